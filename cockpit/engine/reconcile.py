"""Start-up reconciliation: settle what a dead engine left half done.

Run by the engine before it creates its branch (it holds the journal lock, so
every unclosed journal entry belongs to a dead engine). The restart rule:

1. Orphans: a run whose journal ``train`` entry is not closed and whose
   process group is still alive (a member with the workspace as its working
   directory) is killed, group and all; so is a re-run's (noise floor,
   confirming re-run: ``aux-train`` without ``aux-close``), which has no row.
2. Torn last lines (no newline: the write was cut off). The journal's is
   dropped: that entry was never written whole. results.tsv's is completed
   only when it is provably the interrupted experiment's row (it starts after
   that experiment's ``results_offset`` and is a prefix of its row, or of the
   header in a new file): the torn text is saved to
   ``.cockpit/torn-results-*.txt``, cut off, and the row written whole below.
   Any other torn line is left alone, and the session refuses to start naming
   its line (``ledger.read_rows``).
3. Each ``open`` without ``close``: when results.tsv already holds the
   experiment's row (after its ``results_offset``; matched by commit) the engine
   died after the row: the entry is closed (and the record written if missing;
   a keep row stays kept).
   Otherwise, when its log ends with a complete summary block (every contract
   key) it is decided by the session's own keep rule (cockpit.rules.noise.KeepRule,
   rebuilt by ``rule_of_session`` from the dead session's ``noise-floor`` record
   and cockpit.toml's ``keep_threshold``) against the val_bpb of its parent
   keep: keep or discard, description ``<description> [recovered]`` (after
   " [within noise]" when it improved by no more than the threshold). A close
   call would need a confirming re-run, which cannot happen here (the run is
   over, the engine starting is another session): it is judged on its one
   value, so it is a discard, the conservative side (as the live engine
   decides when a confirming re-run crashes). Else it is a crash row
   ``<description> [interrupted]`` with val_bpb 0. Either way a record
   ``"kind": "experiment", "interrupted": true`` with the reason, and the entry
   closes. Never a second row for the same experiment.
4. Each dead session (no ``end``, or an entry left open) gets its branch back
   at its last kept commit, when the branch points past it at commits that
   cockpit made (a hand commit is never thrown away); then an ``end`` entry.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Optional

from git.exc import GitCommandError

from cockpit.engine.bookkeeping import PRESERVED
from cockpit.clock import now_iso
from cockpit.store.journal import Journal, unclosed
from cockpit.store.records import ExperimentRecord, append_record, read_records
from cockpit.store.results import HEADER, Row, append_row, read_rows, torn_tail
from cockpit.rules.noise import Judgement, KeepRule, noise_mark, rule_of_session
from cockpit.store.repo import GitRepo, RepoError, short
from cockpit.rules.summary import attention_backend, parse_summary, summary_memory_gb, summary_val_bpb
from cockpit.store.workspace import Workspace

SUMMARY_KEYS = ("val_bpb", "training_seconds", "total_seconds", "peak_vram_mb", "mfu_percent",
                "total_tokens_M", "num_steps", "num_params_M", "depth")
Note = tuple[str, str]  # (level, text) for an EngineMessage


def reconcile(ws: Workspace, repo: GitRepo, journal: Journal) -> list[Note]:
    """Apply the restart rule (module docstring); returns what was done, as notes.
    Raises LedgerError for a torn or corrupt results.tsv it may not repair."""
    entries, torn_note = journal.read()
    notes: list[Note] = [("warning", torn_note)] if torn_note else []
    journal.cut_torn_tail()
    pending = unclosed(entries)
    sessions = {e["tag"]: e for e in entries if e["entry"] == "session"}
    notes += kill_orphans(entries, pending, ws.path)
    notes += repair_torn_tail(ws, journal, pending)
    for entry in pending:
        notes.append(settle(ws, repo, journal, entry, sessions.get(entry["tag"], {})))
    entries, _ = journal.read()
    ended = {e["tag"] for e in entries if e["entry"] == "end"}
    dead = [tag for tag in sessions if tag not in ended or any(e["tag"] == tag for e in pending)]
    for tag in dead:
        notes += restore_branch(repo, sessions[tag]["branch"], last_kept(entries, tag))
        journal.append("end", tag=tag, reason="reconciled")
    return notes


def kill_orphans(entries: list[dict], pending: list[dict], root: Path) -> list[Note]:
    """Kill the still-running process groups of the unclosed entries' runs."""
    ids = {e["id"] for e in pending}
    closed_aux = {e.get("id") for e in entries if e["entry"] == "aux-close"}
    notes = []
    for entry in entries:
        orphan = (entry["entry"] == "train" and entry["id"] in ids) or (
            entry["entry"] == "aux-train" and entry["id"] not in closed_aux)  # a re-run (cockpit.rules.noise)
        if orphan and group_alive(entry["pid"], root):
            try:
                os.killpg(entry["pid"], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
            notes.append(("warning", f"killed the run left behind by the dead engine ({entry['id']}, "
                                     f"process group {entry['pid']})"))
    return notes


def group_alive(pgid: int, root: Path) -> bool:
    """True when a live process of group ``pgid`` works in ``root`` (so a reused
    pid is never killed). Reads /proc; False where there is none."""
    proc = Path("/proc")
    if not proc.is_dir():
        return False
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z" and (entry / "cwd").resolve() == root:
                return True
        except (OSError, ValueError, IndexError):
            continue
    return False


def repair_torn_tail(ws: Workspace, journal: Journal, pending: list[dict]) -> list[Note]:
    """Cut off a torn last line of results.tsv that is the last unclosed entry's
    row (rule 2); leave any other torn line for read_rows to refuse."""
    torn = torn_tail(ws.results_tsv)
    if torn is None or not pending:
        return []
    number, start, text = torn
    entry = pending[-1]
    row_start = short(entry["commit"]) + "\t"
    ours = row_start.startswith(text) or text.startswith(row_start)
    if start == 0:
        ours = "\t".join(HEADER).startswith(text)
    if start < entry["results_offset"] or not ours:
        return []
    saved = journal.path.parent / f"torn-results-{now_iso().replace(':', '')}.txt"
    saved.write_text(text, encoding="utf-8")
    os.truncate(ws.results_tsv, start)
    return [("warning", f"{ws.results_tsv}:{number}: the last line was cut off when the engine died "
                        f"({text!r}); removed it (kept in {saved}) and wrote the row whole")]


def settle(ws: Workspace, repo: GitRepo, journal: Journal, entry: dict, session: dict) -> Note:
    """Rule 3 for one unclosed ``open`` entry; returns what was done."""
    n, commit, tag, parent = entry["experiment"], entry["commit"], entry["tag"], entry.get("parent", "")
    before, after = split_rows(ws.results_tsv, entry["results_offset"])
    where = f"#{n} {short(commit)} of session {tag}"
    row = next((r for r in after if r.commit == short(commit)), None)
    if row is not None:
        if not has_record(ws.records_jsonl, tag, n, short(commit)):
            append_record(ws.records_jsonl, _record(
                ws, repo, entry, session, row, {}, "the engine died after its row, before its record"))
        kept = commit if row.status == "keep" else parent
        journal.append("row", id=entry["id"], tag=tag, experiment=n, commit=commit, status=row.status, kept=kept)
        journal.append("close", id=entry["id"], reconciled=True)
        return "info", f"{where}: the engine died after writing its row; nothing else was missing"
    # lines that are not JSON objects are passed over: a damaged line elsewhere does not stop a restart here
    rule = rule_of_session(read_records(ws.records_jsonl, skip=lambda message: None), tag, ws.settings.keep_threshold)
    row, summary, reason, judged = judge(ws.path / entry.get("log_path", ""), entry, reference(before, parent), rule)
    append_row(ws.results_tsv, row)
    append_record(ws.records_jsonl, _record(ws, repo, entry, session, row, summary, reason,
                                            judged.as_record() if judged else {}))
    kept = commit if row.status == "keep" else parent
    journal.append("row", id=entry["id"], tag=tag, experiment=n, commit=commit, status=row.status, kept=kept)
    journal.append("close", id=entry["id"], reconciled=True)
    return "warning", f"{where} was interrupted (the engine died): {reason}; row {row.status} '{row.description}'"


def judge(log: Path, entry: dict, best: Optional[float],
          rule: KeepRule = KeepRule()) -> tuple[Row, dict, str, Optional[Judgement]]:
    """(row, summary, reason, noise judgement) of an interrupted experiment from
    its log: when the log ends with a complete summary block, decided by
    ``rule`` against ``best`` (the parent keep's val_bpb) without a confirming
    re-run (a close call is a discard: module docstring); else a crash."""
    text = read_log(log)
    summary = parse_summary(text)
    val, commit, description = summary_val_bpb(summary), short(entry["commit"]), entry["description"]
    complete = all(key in summary for key in SUMMARY_KEYS)
    if complete and val is not None and (entry["experiment"] == 0 or best is not None):
        status, judged = rule.decide(val, None if entry["experiment"] == 0 else best, can_confirm=False)
        why = f"its log holds a complete summary (val_bpb {val:.6f}), decided by the session's keep rule"
        if judged is not None and (rule.sigma or rule.keep_threshold):
            why += f" (improvement {judged.delta:+.6f}, threshold {judged.threshold:.6f}; no confirming re-run)"
        row = Row(commit, val, summary_memory_gb(summary), status, description + noise_mark(status, judged)
                  + " [recovered]")
        return row, summary, why, judged
    if not text:
        why = "its log is missing or empty (the run had not started)"
    elif not complete:
        why = "its log has no complete summary block (it died before the run ended)"
    else:
        why = "no finite val_bpb" if val is None else "its reference val_bpb is unknown"
    return Row(commit, 0.0, 0.0, "crash", description + " [interrupted]"), summary, why, None


def read_log(log: Path) -> str:
    """The text of run log ``log`` ("" when it is missing or not a file)."""
    return log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""


def split_rows(path: Path, offset: int) -> tuple[list[Row], list[Row]]:
    """results.tsv's rows written before byte ``offset`` and those after it."""
    rows = read_rows(path)
    if offset <= 0 or not path.exists():
        return [], rows
    with open(path, "rb") as handle:
        head = handle.read(offset)
    count = max(0, head.count(b"\n") - 1)  # the header line is not a row
    return rows[:count], rows[count:]


def reference(before: list[Row], parent: str) -> Optional[float]:
    """val_bpb of the newest keep row of commit ``parent`` (None: no parent or none found)."""
    kept = [r for r in before if parent and r.status == "keep" and r.commit == short(parent)]
    return kept[-1].val_bpb if kept else None


def has_record(records: Path, tag: str, n: int, commit: str) -> bool:
    """True when records.jsonl holds the experiment record of ``tag`` #``n`` ``commit``."""
    return any(r.get("kind") == "experiment" and r.get("tag") == tag and r.get("experiment") == n
               and r.get("commit") == commit for r in read_records(records))


def _record(ws: Workspace, repo: GitRepo, entry: dict, session: dict, row: Row, summary: dict,
            reason: str, noise: Optional[dict] = None) -> ExperimentRecord:
    parent = entry.get("parent", "")
    try:
        diff = repo.diff(parent, entry["commit"]) if parent else ""
    except (RepoError, GitCommandError):  # a vanished commit leaves the diff empty, nothing more
        diff = ""
    crash = row.status == "crash"
    return ExperimentRecord(
        kind="experiment", experiment=entry["experiment"], tag=entry["tag"], status=row.status,
        description=row.description, agent=session.get("agent", ""), profile=session.get("profile", ws.profile),
        budget_s=session.get("budget_s", 0.0), program_sha256="", harness_sha256=entry.get("harness_sha256", ""),
        started=entry.get("started", ""), ended=now_iso(), commit=row.commit, parent=short(parent) if parent else "",
        val_bpb=None if crash else row.val_bpb, memory_gb=row.memory_gb, diff=diff, summary=summary,
        log_path=entry.get("log_path", ""), reason=reason, interrupted=True, noise=noise or {},
        attention=attention_backend(summary, read_log(ws.path / entry.get("log_path", ""))))


def last_kept(entries: list[dict], tag: str) -> str:
    """The last kept commit the journal knows for session ``tag`` ("" before its baseline)."""
    kept = ""
    for entry in entries:
        if entry.get("tag") == tag and entry["entry"] == "open" and entry.get("parent"):
            kept = entry["parent"]
        elif entry.get("tag") == tag and entry["entry"] == "row" and entry.get("kept"):
            kept = entry["kept"]
    return kept


def restore_branch(repo: GitRepo, branch: str, kept: str) -> list[Note]:
    """Rule 4: move ``branch`` back to ``kept`` when it points past it at cockpit's commits."""
    if not kept or not repo.branch_exists(branch):
        return []
    head = repo.branch_head(branch)
    if head == kept:
        return []
    if not repo.cockpit_made(kept, head):
        return [("warning", f"{branch} is at {short(head)}, not at its last keep {short(kept)}, and holds "
                            "commits cockpit did not make: left as it is")]
    try:
        if repo.current_branch() == branch:
            repo.reset_hard(kept, preserve=PRESERVED)
        else:
            repo.move_branch(branch, kept)
    except RepoError as exc:
        return [("warning", f"could not move {branch} back to its last keep {short(kept)}: {exc}")]
    return [("warning", f"{branch} moved back from {short(head)} to its last keep {short(kept)} "
                        "(the engine died before it could)")]
