"""The two append-only logs of a workspace: results.tsv and records.jsonl.

``results.tsv`` keeps the upstream five tab-separated columns so upstream tools
(pandas ``read_csv(sep="\\t")``) read it::

    commit	val_bpb	memory_gb	status	description
    a1b2c3d	0.997900	44.0	keep	baseline

``records.jsonl`` holds one JSON object per experiment, per dropped, vetoed or
withdrawn proposal and per human action: everything the five columns cannot
(diff, summary, timings, log path, ...).
Both are appended with flush + fsync and never rewritten; a corrupt line is
reported with its line number, never repaired (a last line cut off mid-write
too: see ``torn_tail``; cockpit.engine.reconcile completes the one case it can prove).
One exception: a torn last line of records.jsonl (no newline, not a JSON
object: what a kill or a full disk leaves mid-append) is moved, whole, to a
file of its own at session start (``set_aside_torn_record``), so the next
append cannot bury it in the middle; any other corrupt line refuses the
session (``check_records``).
An append that fails (disk full) is cut back to the old size: no half line
stays. Every string written passes through cockpit.rules.redact (no API keys).
"""

from __future__ import annotations

import json
import math
import os
import unicodedata
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from cockpit.clock import now_iso
from cockpit.rules.redact import redact, redact_data

HEADER = ("commit", "val_bpb", "memory_gb", "status", "description")
STATUSES = ("keep", "discard", "crash")
MAX_DESCRIPTION = 300  # characters kept of a description in results.tsv


class LedgerError(ValueError):
    """results.tsv or records.jsonl is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Row:
    """One results.tsv row: ``commit`` (7 chars), ``val_bpb`` bits per byte (0 for a
    crash), ``memory_gb`` peak memory in GB (0 for a crash), ``status`` (keep,
    discard or crash) and a one-line ``description``."""

    commit: str
    val_bpb: float
    memory_gb: float
    status: str
    description: str


@dataclass(frozen=True)
class ExperimentRecord:
    """One records.jsonl object: an experiment (``kind`` "experiment"), a proposal
    dropped after its re-asks (``kind`` "dropped", ``status`` "dropped", no commit),
    or a committed proposal that never trained (``kind`` and ``status`` "vetoed": the
    human vetoed it at the approval gate; "withdrawn": the session stopped or the
    branch moved under it; ``reason`` says which). Human actions are plain objects
    (``kind`` "action", see cockpit.engine.actions).

    Times: ``timings`` holds propose_s, startup_s (process start -> the first
    counted training step, RunResult.counted_start), training_s (-> the last step
    line), eval_s (last step line -> exit)
    and wall_s, and the idle gap before the run (gap_s = wait_model_s +
    wait_human_s + paused_s + overhead_s; git_s part of the overhead), in
    seconds (cockpit.rules.timekeeping); ``session`` the session's sums at that row
    (idle_share, experiments_per_hour, ideal_per_hour, ...); ``started``/``ended`` are ISO-8601 UTC. ``commit`` and
    ``parent`` (the last kept commit before this one) are 7-char hashes;
    ``val_bpb`` is None for a crash; ``errors`` are the EditError messages of
    rejected replies; ``replies`` the raw replies of a dropped proposal.
    ``program`` names the program the proposal read (``program.md``, a path, or
    ``programs/NAME.md``), ``program_sha256`` the hash of the text it saw;
    ``agent_usage`` the proposal's tokens and cost (cockpit.rules.usage; None for the
    baseline and the offline agent); ``fix_attempt`` (1..N) and ``fix_of`` (the
    crashed commit it fixes) mark a fix attempt; ``steering`` the notes in force.
    ``interrupted`` marks a row written at start-up for an experiment whose engine
    died (cockpit.engine.reconcile; ``reason`` says what was found). ``stray_processes``
    counts the run's descendants that had left its process group (``setsid``) and
    were killed after it (cockpit.training.runner ``sweep``). ``queued`` is set for a
    pipelined proposal (asked while an earlier run trained, cockpit.engine.pipeline):
    ``asked_during`` (that run's number), ``base`` (the keep it was asked
    against), ``rebased`` (re-applied onto a newer keep), ``approved_ahead``.
    ``kind`` "superseded": a pipelined proposal never committed (a steering
    note or program.md changed after it was asked, it no longer applied to the
    new best, or the session ended first); ``reason`` says which. ``noise``
    is the noise-aware judgement of a finished run (cockpit.rules.noise: delta,
    threshold, sigma, runs averaged, delta_sigma, verdict); ``abort`` why and
    when early abort stopped it (cockpit.rules.early_abort: reason, at_s, saved_s);
    ``holdout_bpb`` the holdout shard's score (cockpit.rules.holdout; None when the
    harness did not score it: a clear discard, an upstream harness).
    ``attention`` the attention backend the run used (cockpit.rules.summary
    ``attention_backend``: ``fa3:<hub repo>``, ``flex``, ``sdpa``, ``sdpa-masked``;
    "" when unknown: a run that never said, an upstream harness, a record
    written before the field existed, which readers take as "").
    Re-runs that make no row are ``kind`` "rerun" (with ``attention`` too); the
    noise floor ``kind`` "noise-floor" (runs, sigma, mean).
    """

    kind: str
    experiment: int
    tag: str
    status: str
    description: str
    agent: str
    profile: str
    budget_s: float
    program_sha256: str
    harness_sha256: str
    started: str
    ended: str
    commit: str = ""
    parent: str = ""
    val_bpb: Optional[float] = None
    memory_gb: float = 0.0
    diff: str = ""
    summary: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    returncode: Optional[int] = None
    timed_out: bool = False
    stopped: bool = False
    log_path: str = ""
    errors: list = field(default_factory=list)
    replies: list = field(default_factory=list)
    program: str = ""
    agent_usage: Optional[dict] = None
    fix_attempt: int = 0
    fix_of: str = ""
    steering: list = field(default_factory=list)
    reason: str = ""
    interrupted: bool = False
    stray_processes: int = 0
    queued: dict = field(default_factory=dict)
    session: dict = field(default_factory=dict)
    noise: dict = field(default_factory=dict)
    abort: dict = field(default_factory=dict)
    holdout_bpb: Optional[float] = None
    attention: str = ""


def clean_description(text: str) -> str:
    """A description as results.tsv, the commit message and the record hold it.

    One line: tabs, CR, LF and other whitespace become spaces, runs of spaces
    collapse; NUL and the other control characters (Unicode category Cc, and
    the format characters of category Cf such as zero-width spaces and
    direction overrides) are dropped; the double quote ``"`` becomes ``'``,
    because pandas ``read_csv(sep="\t")``, as upstream's analysis notebook
    reads results.tsv, takes a field that begins with ``"`` for a quoted one
    (then fails with "EOF inside string" or merges rows). Capped at
    MAX_DESCRIPTION characters; "(no description)" when nothing is left."""
    kept = []
    for char in text.replace('"', "'"):
        if char in "\t\r\n\v\f\x85\u2028\u2029":
            kept.append(" ")
        elif unicodedata.category(char) not in ("Cc", "Cf"):
            kept.append(char)
    one_line = " ".join("".join(kept).split())
    return one_line[:MAX_DESCRIPTION] or "(no description)"


def format_row(row: Row) -> str:
    """The row as a results.tsv line (with its newline), formatted exactly as upstream.

    A crash row always shows ``0.000000`` and ``0.0``. Raises ValueError on an
    unknown status.
    """
    if row.status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {row.status!r}")
    crash = row.status == "crash"
    val = 0.0 if crash or not math.isfinite(row.val_bpb) else row.val_bpb
    mem = 0.0 if crash or not math.isfinite(row.memory_gb) else row.memory_gb
    fields = (row.commit[:7], f"{val:.6f}", f"{mem:.1f}", row.status, clean_description(row.description))
    return "\t".join(fields) + "\n"


def append_durably(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` on a fresh line, then flush and fsync. When the
    write fails (OSError: disk full, ...), the file is cut back to its old size
    (best effort) and the error raised: no partial line is left behind."""
    with open(path, "a+b") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                text = "\n" + text
        try:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        except OSError:
            _cut_back(handle, size)
            raise


def _cut_back(handle, size: int) -> None:
    """Truncate ``handle``'s file to ``size`` bytes, ignoring a second failure."""
    try:
        os.ftruncate(handle.fileno(), size)
    except OSError:
        pass


def append_row(path: str | os.PathLike, row: Row) -> str:
    """Append ``row`` to results.tsv at ``path`` (header first if the file is new or
    empty), flushed and fsynced. Returns the line written. Raises LedgerError when an
    existing file has another header."""
    path = Path(path)
    text = row_text(path, row)
    append_durably(path, text)
    return text


def row_text(path: str | os.PathLike, row: Row) -> str:
    """What ``append_row`` would append to ``path`` for ``row``: the line, after the
    header when the file is new or empty. Raises LedgerError on another header."""
    path = Path(path)
    text = format_row(Row(row.commit, row.val_bpb, row.memory_gb, row.status, redact(row.description)))
    if not path.exists() or path.stat().st_size == 0:
        return "\t".join(HEADER) + "\n" + text
    _check_header(path)
    return text


def _check_header(path: Path) -> None:
    with open(path, encoding="utf-8", newline="") as handle:
        first = handle.readline().rstrip("\r\n")
    if tuple(first.split("\t")) != HEADER:
        raise LedgerError(f"{path}:1: header is {first!r}, expected {chr(9).join(HEADER)!r}")


def _parse_row(path: Path, number: int, line: str) -> Row:
    fields = line.split("\t")
    if len(fields) != len(HEADER):
        raise LedgerError(f"{path}:{number}: expected {len(HEADER)} tab-separated fields, found {len(fields)}: {line!r}")
    commit, val, mem, status, description = fields
    status = status.strip().lower()  # upstream sessions' files may write KEEP or Keep
    if status not in STATUSES:
        raise LedgerError(f"{path}:{number}: status {status!r} is not keep, discard or crash")
    try:
        val_bpb, memory_gb = float(val), float(mem)
    except ValueError:
        raise LedgerError(f"{path}:{number}: val_bpb {val!r} or memory_gb {mem!r} is not a number") from None
    if not commit or " " in commit:
        raise LedgerError(f"{path}:{number}: commit {commit!r} is not a short hash")
    return Row(commit, val_bpb, memory_gb, status, description)


def read_rows(path: str | os.PathLike) -> list[Row]:
    """All rows of results.tsv (``[]`` when the file does not exist or is empty).

    Raises LedgerError naming ``path:line`` for a wrong header, a corrupt row or
    a last line without its newline (``torn_tail``).
    """
    path = Path(path)
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as handle:
        lines = handle.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        raise LedgerError(f"{path}:{len(lines)}: the last line is incomplete (no newline at its end: a write "
                          f"was cut off): {lines[-1]!r}; complete or delete that line, then start again")
    if not lines:
        return []
    if tuple(lines[0].rstrip("\r").split("\t")) != HEADER:
        raise LedgerError(f"{path}:1: header is {lines[0]!r}, expected {chr(9).join(HEADER)!r}")
    return [_parse_row(path, i, line.rstrip("\r")) for i, line in enumerate(lines[1:], start=2)]


def torn_tail(path: str | os.PathLike) -> Optional[tuple[int, int, str]]:
    """(line number, byte offset where it starts, text) of the last line of
    ``path`` when it has no newline at its end (a write cut off), else None."""
    path = Path(path)
    if not path.exists():
        return None
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return None
    start = data.rfind(b"\n") + 1
    return data.count(b"\n") + 1, start, data[start:].decode("utf-8", errors="replace")


def append_record(path: str | os.PathLike, record: Union[ExperimentRecord, dict]) -> None:
    """Append ``record`` as one JSON line to records.jsonl, flushed and fsynced.

    Non-finite floats are written as null (strict JSON); secrets are redacted.
    Raises TypeError for values JSON cannot hold.
    """
    data = asdict(record) if is_dataclass(record) else record
    line = json.dumps(redact_data(_finite(data)), ensure_ascii=False, allow_nan=False)
    append_durably(Path(path), line + "\n")


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _parse_record(raw: bytes, strict: bool = True) -> tuple[Optional[dict], Optional[str]]:
    """(object, None) for one records.jsonl line (bytes), else (None, what is wrong with it).
    Not strict: bytes that are not UTF-8 are replaced (readers that only report)."""
    try:
        line = raw.decode("utf-8", errors="strict" if strict else "replace")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {exc.start})"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg})"
    return (record, None) if isinstance(record, dict) else (None, "expected a JSON object")


def read_records(path: str | os.PathLike, skip: Optional[Callable[[str], None]] = None) -> list[dict]:
    """All objects of records.jsonl (``[]`` when absent). Raises LedgerError with the
    line number of a line that is not a JSON object (or not UTF-8); with ``skip``, such
    a line is passed over and ``skip(message)`` says so instead (readers that only report)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            record, problem = _parse_record(raw, strict=skip is None)
            if problem is None:
                records.append(record)
            elif skip is None:
                raise LedgerError(f"{path}:{number}: {problem}")
            else:
                skip(f"{path}:{number}: {problem}; skipped")
    return records


def torn_record(path: str | os.PathLike) -> Optional[tuple[int, int, bytes]]:
    """(line number, byte offset where it starts, its bytes) of records.jsonl's last
    line when a write cut it off: no newline at its end and not a JSON object. None
    otherwise (no file, a newline at its end, a blank tail, or a whole object that only
    lacks its newline: the next append adds one). Raises OSError when unreadable."""
    path = Path(path)
    if not path.exists():
        return None
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return None
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return None
        handle.seek(0)
        return _torn(handle.read())


def _torn(data: bytes) -> Optional[tuple[int, int, bytes]]:
    """``torn_record`` of records.jsonl's bytes ``data``."""
    if not data or data.endswith(b"\n"):
        return None
    start = data.rfind(b"\n") + 1
    tail = data[start:]
    if not tail.strip() or _parse_record(tail)[1] is None:
        return None
    return data.count(b"\n") + 1, start, tail


def check_records(path: str | os.PathLike) -> int:
    """Check every line of records.jsonl but a torn last one (``torn_record``, set aside
    by ``set_aside_torn_record``); returns the number of objects. Raises LedgerError,
    one line naming ``path:LINE``, for a line that is not a JSON object (or not UTF-8):
    a session refuses to start on it, since the agent's history and resume read it."""
    path = Path(path)
    if not path.exists():
        return 0
    data = path.read_bytes()
    torn = _torn(data)
    if torn is not None:
        data = data[:torn[1]]
    count = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        _, problem = _parse_record(raw)
        if problem is not None:
            raise LedgerError(f"{path}:{number}: {problem}; a line in the middle of records.jsonl was damaged "
                              "(not a cut-off write): repair or delete that line (keep a copy), then start again")
        count += 1
    return count


def set_aside_torn_record(path: str | os.PathLike, folder: str | os.PathLike) -> Optional[str]:
    """When records.jsonl at ``path`` ends in a torn line (``torn_record``: a kill or a
    full disk mid-append), write that line's bytes to ``folder``/torn-records-<UTC
    time>.txt (fsynced; ``folder`` is made if missing), then cut ``path`` back to the
    line before it, so nothing is lost and the next append does not bury it in the
    middle of the file. Returns a one-line warning saying so, or None when nothing was
    torn. Raises LedgerError (one line) when it cannot be read, saved or cut back."""
    path, folder = Path(path), Path(folder)
    try:
        torn = torn_record(path)
        if torn is None:
            return None
        number, start, tail = torn
        folder.mkdir(parents=True, exist_ok=True)
        stamp = now_iso().replace(":", "").replace("+0000", "Z")
        saved = folder / f"torn-records-{stamp}.txt"
        extra = 1
        while saved.exists():
            extra += 1
            saved = folder / f"torn-records-{stamp}-{extra}.txt"
        with open(saved, "xb") as handle:
            handle.write(tail)
            handle.flush()
            os.fsync(handle.fileno())
        os.truncate(path, start)
    except OSError as exc:
        raise LedgerError(f"{path}: cannot set aside its cut-off last line: {exc.strerror or exc}") from None
    return (f"{path}:{number}: the last line was cut off mid-write (a killed engine or a full disk), "
            f"{len(tail)} bytes; moved to {saved} and removed from {path.name}, the lines before it are intact")

