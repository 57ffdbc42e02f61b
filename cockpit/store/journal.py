"""The journal: what the engine is doing, written before it does it.

``.cockpit/journal.jsonl`` in the workspace (git-ignored) is append-only: one
JSON object per line, flushed and fsynced like results.tsv (secrets redacted).
Each object has an ``entry`` kind:

- ``session``: a session started (tag, branch, base commit, harness_sha256,
  agent, profile, budget_s, pid).
- ``open``: experiment ``experiment`` is committed and about to run: ``id``,
  ``commit`` and ``parent`` (the last kept commit; full hashes), the row's
  ``description``, ``started``, ``log_path``, ``results_offset`` (results.tsv's
  size then: its row comes after that byte) and ``harness_sha256``. Written
  right after the commit, before the run.
- ``train``: its run started as process group ``pid``.
- ``row``: a results.tsv row and its record are written (``id`` None for rows
  that did not run: a forced keep, a revert); ``kept`` is the last kept
  commit after it.
- ``close``: the experiment is finished (``reconciled`` when start-up did it).
- ``end``: the session ended (``reason``; "reconciled" when start-up found it dead).

An ``open`` without its ``close`` means the engine died in that experiment;
a ``session`` without ``end`` that it died in that session. cockpit.engine.reconcile
settles both at the next start. The ``JournalLock`` (``.cockpit/journal.lock``,
flock, held by the Engine for its whole run) makes sure one engine at a time
writes the journal, so a live engine's open entry is never taken for a dead
one's; the kernel drops the lock when its process dies, kill -9 included.
(``.cockpit/engine.lock`` is cockpit.store.rundir's: the process that hosts an
engine, a daemon or a headless ``cockpit``, holds it around the Engine.)
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Optional

from cockpit.clock import now_iso
from cockpit.store.ledger import append_durably
from cockpit.rules.redact import redact_data

DIRECTORY = ".cockpit"  # git-ignored: the journal and its lock (cockpit.store.rundir keeps its files here too)


class JournalError(RuntimeError):
    """The journal cannot be read or the workspace is locked; one clear line."""


def entry_id(tag: str, experiment: int, commit: str) -> str:
    """The id of one experiment's open/close pair: ``tag#n-commit7``."""
    return f"{tag}#{experiment}-{commit[:7]}"


class Journal:
    """``.cockpit/journal.jsonl`` of the workspace at ``root``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.path = Path(root) / DIRECTORY / "journal.jsonl"

    def append(self, entry: str, **fields) -> None:
        """Append one entry (kind ``entry`` and ``fields``, plus the time), fsynced.
        Raises OSError when it cannot be written."""
        self.path.parent.mkdir(mode=0o700, exist_ok=True)  # as cockpit.store.rundir makes it
        data = redact_data({"entry": entry, **fields, "time": now_iso()})
        append_durably(self.path, json.dumps(data, ensure_ascii=False) + "\n")

    def read(self) -> tuple[list[dict], Optional[str]]:
        """(entries, note): every entry in order; ``note`` names a last line cut off
        mid-write, which is skipped (that write never finished). Raises JournalError
        for any other line that is not a JSON object."""
        if not self.path.exists():
            return [], None
        lines = self.path.read_text(encoding="utf-8", errors="replace").split("\n")
        torn = lines.pop()  # "" when the file ends with a newline
        entries = [self._parse(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
        note = None
        if torn.strip():
            note = f"{self.path}:{len(lines) + 1}: the last journal line was cut off mid-write; dropped it"
        return entries, note

    def cut_torn_tail(self) -> None:
        """Cut off a last line that has no newline (a write the dead engine never
        finished), so the next entry does not land behind it. Only at start-up."""
        data = self.path.read_bytes() if self.path.exists() else b""
        if data and not data.endswith(b"\n"):
            os.truncate(self.path, data.rfind(b"\n") + 1)

    def _parse(self, number: int, line: str) -> dict:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            entry = exc
        if not isinstance(entry, dict) or "entry" not in entry:
            raise JournalError(f"{self.path}:{number}: not a journal entry; move the file aside "
                               f"(it only serves crash recovery) and start again")
        return entry


def unclosed(entries: list[dict]) -> list[dict]:
    """The ``open`` entries without a ``close``, in order."""
    opened: dict[str, dict] = {}
    for entry in entries:
        if entry["entry"] == "open":
            opened[entry["id"]] = entry
        elif entry["entry"] == "close":
            opened.pop(entry.get("id"), None)
    return list(opened.values())


class JournalLock:
    """An exclusive flock on ``.cockpit/journal.lock``, held while an Engine runs."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.path = Path(root) / DIRECTORY / "journal.lock"
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        """Take the lock and write our pid in it. Raises JournalError when another
        live engine holds it, OSError when the file cannot be created."""
        self.path.parent.mkdir(mode=0o700, exist_ok=True)  # as cockpit.store.rundir makes it
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise JournalError(f"another cockpit engine (pid {holder}) is running on this workspace; "
                               "stop it first (one engine per workspace)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (safe to call twice)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
