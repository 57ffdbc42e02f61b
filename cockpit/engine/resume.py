"""Resume, don't restart: find the session a dead or stopped engine left, and what it knew.

Running the same command again after a kill -9, a reboot, a closed laptop or a
stop continues the workspace's latest session when it did not finish: its tag
and branch, the rows it logged (experiment numbers go on from there), its
best and incumbent (folded from those rows by cockpit.rules.standing, as the live
engine folds them), its noise floor (the ``noise-floor`` record), the
baseline's holdout score, its steering notes, the attention backend of each
commit it trained (the incumbent's, for the backend warning) and its time
budget. Nothing is trained again: no baseline, no noise-floor runs (unless the
engine died before the floor was measured). The agent's history is on disk anyway (results.tsv,
records.jsonl, the branch's kept diffs), read afresh for every proposal.

Which session: the newest ``session`` entry of ``.cockpit/journal.jsonl``,
when its session has no ``end``, or ended "reconciled" (a start-up found it
dead), "stopped" or with an error; not when it ended at "max-experiments" or
"agent-exhausted" (done: the same command starts a fresh session from the
current best), nor before its baseline was kept (nothing to continue), nor
when its branch is gone. ``--new-session`` (or a typed ``--tag`` that is not
that session's) starts a fresh one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from cockpit.store.journal import Journal, JournalError
from cockpit.store.ledger import LedgerError
from cockpit.store.records import read_records
from cockpit.store.results import Row, read_rows
from cockpit.rules.standing import is_baseline, running_best

UPSTREAM = "upstream"
"""``Resumable.ended`` of a session that upstream's agent ran (no journal, no records)."""

FINISHED = ("max-experiments", "agent-exhausted")
"""End reasons of a session that is done: never resumed."""


@dataclass(frozen=True)
class Resumable:
    """A session that can be continued: its ``tag``, ``branch``, ``base`` commit (where
    the branch started), ``budget_s`` (seconds per run), ``harness_sha256`` (prepare.py
    when it began), how it ``ended`` ("" when the journal has no end yet),
    and ``results_offset``: the byte of results.tsv where its rows begin."""

    tag: str
    branch: str
    base: str
    budget_s: float
    harness_sha256: str
    ended: str
    results_offset: int


@dataclass
class Restored:
    """What the session knew, read back: its ``rows`` in order (cockpit.store.ledger Row,
    experiment n = index n), the ``noise`` floor runs and holdout runs (empty when it
    was not measured), the baseline's (val_bpb, holdout_bpb) when scored, the
    steering notes of its newest record, ``log_names`` by experiment, and
    ``backends``: the attention backend of each commit its experiment records
    name (short hash -> backend; a record without the field, written before it
    existed, gives none), and ``agents``: the agent each experiment's record names."""

    rows: list[Row]
    noise_runs: tuple[float, ...] = ()
    noise_holdout_runs: tuple[float, ...] = ()
    noise_measured: bool = False
    baseline_scores: Optional[tuple[float, float]] = None
    steering: list[str] = field(default_factory=list)
    log_names: dict[int, str] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)
    agents: dict[int, str] = field(default_factory=dict)


def resumable_session(workspace: Path, branch_exists=None) -> Optional[Resumable]:
    """The session to continue on ``workspace`` (module docstring), or None.
    ``branch_exists(name)`` checks the branch (None: not checked). A journal that
    cannot be read gives None: start-up then says why in its own words."""
    try:
        entries, _ = Journal(workspace).read()
    except (JournalError, OSError):
        return None
    starts = [i for i, e in enumerate(entries) if e.get("entry") == "session"]
    if not starts:
        return None
    session = entries[starts[-1]]
    tag = session.get("tag", "")
    first = next((i for i, e in enumerate(entries) if e.get("entry") == "session" and e.get("tag") == tag), starts[-1])
    ends = [e for e in entries[starts[-1]:] if e.get("entry") == "end" and e.get("tag") == tag]
    ended = str(ends[-1].get("reason", "")) if ends else ""
    if ended in FINISHED:
        return None
    first_session = entries[first]
    kept = [e for e in entries[first:] if e.get("entry") == "row" and e.get("tag") == tag and e.get("status") == "keep"]
    opens = [e for e in entries[first:] if e.get("entry") == "open" and e.get("tag") == tag]
    if not (kept or first_session.get("upstream")) or not (opens or "results_offset" in first_session):
        return None  # the baseline was never kept: nothing to continue
    branch = session.get("branch") or f"autoresearch/{tag}"
    if branch_exists is not None and not branch_exists(branch):
        return None
    offset = first_session.get("results_offset", opens[0].get("results_offset", 0) if opens else 0)
    ended = UPSTREAM if first_session.get("upstream") else ended
    return Resumable(tag, branch, first_session.get("base", ""), float(first_session.get("budget_s") or 0.0),
                     first_session.get("harness_sha256", ""), ended, int(offset))


def restore(workspace: Path, point: Resumable) -> Restored:
    """Read back what session ``point`` knew (results.tsv from its offset, its records).
    Raises LedgerError for a corrupt results.tsv (start-up refuses such a file anyway)."""
    path = workspace / "results.tsv"
    rows = read_rows(path)
    if point.results_offset > 0 and path.exists():
        with open(path, "rb") as handle:
            head = handle.read(point.results_offset)
        rows = rows[max(0, head.count(b"\n") - 1):]
    records = [r for r in read_records(workspace / "records.jsonl", skip=lambda message: None)
               if r.get("tag") == point.tag]
    restored = Restored(rows)
    floors = [r for r in records if r.get("kind") == "noise-floor"]
    if floors:
        restored.noise_measured = True
        restored.noise_runs = tuple(float(v) for v in floors[-1].get("runs") or () if isinstance(v, (int, float)))
        restored.noise_holdout_runs = tuple(float(v) for v in floors[-1].get("holdout_runs") or ()
                                            if isinstance(v, (int, float)))
    experiments = [r for r in records if r.get("kind") == "experiment"]
    baseline = next((r for r in experiments if r.get("experiment") == 0 and r.get("status") == "keep"), None)
    if baseline and isinstance(baseline.get("val_bpb"), (int, float)) and isinstance(
            baseline.get("holdout_bpb"), (int, float)):
        restored.baseline_scores = (float(baseline["val_bpb"]), float(baseline["holdout_bpb"]))
    with_notes = [r for r in records if isinstance(r.get("steering"), list)]
    if with_notes:
        restored.steering = [str(note) for note in with_notes[-1]["steering"]]
    for record in experiments:
        if isinstance(record.get("experiment"), int) and record.get("log_path"):
            restored.log_names[record["experiment"]] = str(record["log_path"])
        if isinstance(record.get("experiment"), int) and record["experiment"] and record.get("agent"):
            restored.agents[record["experiment"]] = str(record["agent"])
        if isinstance(record.get("commit"), str) and record["commit"] and isinstance(record.get("attention"), str):
            restored.backends[record["commit"][:7]] = record["attention"]
    return restored


def upstream_session(workspace: Path, tag: str, branch_exists) -> Resumable:
    """Session ``tag`` that upstream autoresearch ran in this checkout: branch
    ``autoresearch/<tag>`` (its head is the best kept commit: upstream resets every
    discard) and the rows of results.tsv from its last baseline row on (a file may
    hold several sessions, each starting at a baseline row). Raises ValueError with
    one line when the branch or the rows are missing; LedgerError for a corrupt file."""
    branch = f"autoresearch/{tag}"
    if not branch_exists(branch):
        raise ValueError(f"--resume-upstream {tag}: this checkout has no branch {branch}")
    path = workspace / "results.tsv"
    rows = read_rows(path)
    if not rows:
        raise ValueError(f"--resume-upstream {tag}: {path} holds no rows to continue from")
    start = max((i for i, row in enumerate(rows) if is_baseline(row)), default=0)
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    offset = sum(len(line) + 1 for line in lines[:1 + start])  # the header and the rows before
    return Resumable(tag, branch, "", 0.0, "", UPSTREAM, offset)


def upstream_offers(workspace: Path, branches: list[str]) -> list[str]:
    """One line per ``autoresearch/<tag>`` branch an upstream session left here (no
    journaled session of that tag), with its rows and best: what ``--resume-upstream``
    would continue."""
    try:
        entries, _ = Journal(workspace).read()
        rows = read_rows(workspace / "results.tsv")
    except (JournalError, LedgerError, OSError):
        return []
    if not rows:
        return []
    ours = {e.get("tag") for e in entries if e.get("entry") == "session"}
    best = running_best(rows)[-1].best
    shown = "-" if best is None else f"{best:.6f}"
    offers = []
    for branch in branches:
        tag = branch.removeprefix("autoresearch/")
        if branch.startswith("autoresearch/") and tag not in ours:
            offers.append(f"this checkout holds upstream session {tag} ({len(rows)} rows in results.tsv, best "
                          f"{shown}); continue it from its best kept commit with --resume-upstream {tag}")
    return offers
