"""records.jsonl: one JSON object per experiment, per dropped, vetoed or withdrawn
proposal and per human action: everything results.tsv's five columns cannot
(diff, summary, timings, log path, ...).

Appended with flush + fsync (cockpit.store.ledger ``append_durably``) and never
rewritten; a corrupt line is reported with its line number, never repaired. One
exception: a torn last line (no newline, not a JSON object: what a kill or a full
disk leaves mid-append) is moved, whole, to a file of its own at session start
(``set_aside_torn_record``), so the next append cannot bury it in the middle; any
other corrupt line refuses the session (``check_records``). Every string written
passes through cockpit.rules.redact (no API keys).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from cockpit.clock import now_iso
from cockpit.rules.redact import redact_data
from cockpit.store.ledger import LedgerError, append_durably


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
    A fleet session's (``--gpus N``, cockpit.engine.fleet) name where it ran: ``worker``
    (slot number), ``node`` (Ray node id, 12 hex digits), ``gpu`` (its CUDA_VISIBLE_DEVICES),
    and ``incumbent_at_decision``, the keep its verdict was made under ("" elsewhere).
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
    worker: str = ""
    node: str = ""
    gpu: str = ""
    incumbent_at_decision: str = ""


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
