"""What the agent sees: the ProposalContext, rebuilt before every proposal.

Nothing is cached between experiments: the program is read from disk at that
moment (hot reload; ``ProgramError`` when it is missing, unreadable or empty),
the history from results.tsv, the kept diffs from records.jsonl along the
current branch, the steering notes as the human sent them (the newest
MAX_STEERING_NOTES, each at most MAX_NOTE_CHARS characters, as cockpit.agents.base
holds them), the proposals the human
vetoed at the approval gate (from records.jsonl); for a fix attempt the
crashed run's log tail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from cockpit.agents.base import ProposalContext
from cockpit.row import Row
from cockpit.store.records import read_records
from cockpit.store.results import read_rows
from cockpit.store.programs import Program, ProgramSource, resolve_program
from cockpit.store.repo import GitRepo, short

MAX_KEPT_DIFFS = 5  # kept changes shown to the agent, most recent
MAX_DIFF_CHARS = 20_000  # characters kept of one diff
MAX_VETOED = 20  # vetoed proposals shown to the agent, most recent
LOG_TAIL_LINES = 50  # lines of a crashed run's output shown for a fix


def history(results_tsv: Path) -> tuple[Row, ...]:
    """Every results.tsv row, oldest first (earlier sessions included).
    Raises LedgerError for a corrupt file."""
    return tuple(read_rows(results_tsv))


def kept_diffs(repo: GitRepo, records_jsonl: Path, head: str, limit: int = MAX_KEPT_DIFFS) -> tuple[str, ...]:
    """Diffs of the last ``limit`` kept experiments that train.py at ``head`` is
    built from (oldest first): the commits reachable from ``head`` whose record
    in records.jsonl is a kept (or later force-kept) experiment with a diff (the
    baseline has none). A diff longer than MAX_DIFF_CHARS is cut, with a note.
    Raises LedgerError."""
    records = read_records(records_jsonl)
    forced = {r.get("commit") for r in records if r.get("kind") == "action" and r.get("action") == "force-keep"}
    kept = {r.get("commit"): r.get("diff", "") for r in records
            if r.get("kind") == "experiment" and r.get("diff") and (r.get("status") == "keep"
                                                                    or r.get("commit") in forced)}
    found: list[str] = []
    if not kept:
        return ()
    for commit, _ in repo.log(head):
        diff = kept.get(short(commit))
        if diff:
            found.append(diff if len(diff) <= MAX_DIFF_CHARS else diff[:MAX_DIFF_CHARS] + "\n[diff cut]\n")
            if len(found) == limit:
                break
    return tuple(reversed(found))


def vetoed_proposals(records_jsonl: Path, limit: int = MAX_VETOED) -> tuple[str, ...]:
    """Descriptions of the last ``limit`` proposals vetoed at the approval gate
    (records.jsonl ``kind`` "vetoed", earlier sessions included), oldest first.
    Raises LedgerError."""
    vetoed = [r.get("description", "") for r in read_records(records_jsonl) if r.get("kind") == "vetoed"]
    return tuple(vetoed[-limit:]) if limit else ()


def log_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of a run's output (progress lines split
    at ``\\r``), joined by newlines: where a traceback is."""
    kept = [line.rstrip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def build_context(*, experiment: int, train_py: str, program: Program, results_tsv: Path,
                  diffs: Sequence[str], steering: Sequence[str], crash_log_tail: Optional[str] = None,
                  fix_attempt: int = 0, max_fix_attempts: int = 0,
                  vetoed: Sequence[str] = (), in_flight: Sequence[str] = ()) -> ProposalContext:
    """The context of one proposal (``fix_attempt`` >= 1 with ``crash_log_tail`` for a
    fix; ``in_flight`` the descriptions of runs training while it is asked)."""
    return ProposalContext(train_py=train_py, program_md=program.text, history=history(results_tsv),
                           experiment=experiment, kept_diffs=tuple(diffs), crash_log_tail=crash_log_tail,
                           fix_attempt=fix_attempt, max_fix_attempts=max_fix_attempts,
                           steering=tuple(steering), vetoed=tuple(vetoed), in_flight=tuple(in_flight))


def session_program(flag: Optional[str], workspace) -> ProgramSource:
    """The program of a session on ``workspace``: ``--program`` (``flag``) if given,
    else cockpit.toml's ``program``, else program.md (see ``program_source``)."""
    spec = flag if flag is not None else workspace.settings.program
    return program_source(spec, workspace.path, upstream=workspace.layout == "upstream")


def program_source(spec: Optional[str], root: Path, upstream: bool) -> ProgramSource:
    """The session's program: ``spec`` (NAME or PATH, see cockpit.store.programs), else the
    workspace's program.md, else (upstream layout without one) the shipped default.
    Raises ProgramError for an unknown NAME or a missing PATH."""
    if spec is None and upstream and not (root / "program.md").exists():
        return ProgramSource(name="default")
    return resolve_program(spec, root)
