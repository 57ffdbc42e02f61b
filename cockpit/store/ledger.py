"""Durable appends for the workspace's two append-only logs (cockpit.store.results:
results.tsv, cockpit.store.records: records.jsonl), and the error both raise.

Both logs are appended with flush + fsync and never rewritten; a corrupt line is
reported with its line number, never repaired. An append that fails (disk full)
is cut back to the old size: no half line stays.
"""

from __future__ import annotations

import os
from pathlib import Path


class LedgerError(ValueError):
    """results.tsv or records.jsonl is malformed; the message names the file and line."""


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
