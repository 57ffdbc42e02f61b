"""results.tsv: the upstream five tab-separated columns, written and read.

Upstream tools (pandas ``read_csv(sep="\\t")``) read it::

    commit	val_bpb	memory_gb	status	description
    a1b2c3d	0.997900	44.0	keep	baseline

Appended with flush + fsync (cockpit.store.ledger ``append_durably``), never
rewritten. One parser reads every line (``parse_row``: lenient in the ways
upstream sessions' files differ: a status in any case, cells padded with spaces,
a tab inside the description, an empty memory cell); two policies use it: the
engine's ``read_rows`` refuses a corrupt line or a last line cut off mid-write
(``torn_tail``; cockpit.engine.reconcile completes the one case it can prove),
and the report's ``read_lines`` skips them with a warning. Every string written
passes through cockpit.rules.redact (no API keys).
"""

from __future__ import annotations

import math
import os
import unicodedata
from pathlib import Path
from typing import Callable, NamedTuple, Optional

from cockpit.row import Row
from cockpit.rules.redact import redact
from cockpit.store.ledger import LedgerError, append_durably

HEADER = ("commit", "val_bpb", "memory_gb", "status", "description")
STATUSES = ("keep", "discard", "crash")
MAX_DESCRIPTION = 300  # characters kept of a description in results.tsv


class Line(NamedTuple):
    """A results.tsv row (cockpit.row ``Row``, unnumbered) and its line number in the
    file (1 is the header)."""

    row: Row
    line: int


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


def _is_header(line: str) -> bool:
    """Whether ``line`` (no line end) is results.tsv's header, in any case, cells padded or not."""
    return tuple(f.strip().lower() for f in line.split("\t")) == HEADER


def _check_header(path: Path) -> None:
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        first = handle.readline().rstrip("\r\n").removeprefix("\ufeff")
    if not _is_header(first):
        raise LedgerError(f"{path}:1: header is {first!r}, expected {chr(9).join(HEADER)!r}")


def parse_row(path: Path, number: int, line: str) -> Row:
    """One results.tsv line (no line end) of the upstream schema as a Row: the
    status in any case (stored lower-case), cells stripped, a tab inside the
    description kept as a space, a commit cell such as ``baseline``, an empty
    memory cell as 0.0. Raises LedgerError naming ``path:number`` for anything else."""
    fields = line.split("\t", len(HEADER) - 1)
    if len(fields) != len(HEADER):
        raise LedgerError(f"{path}:{number}: expected {len(HEADER)} tab-separated fields, found {len(fields)}: "
                          f"{line!r}")
    commit, val, mem, status, description = (f.strip() for f in fields)
    status = status.lower()  # upstream sessions' files may write KEEP or Keep
    if status not in STATUSES:
        raise LedgerError(f"{path}:{number}: status {status!r} is not keep, discard or crash")
    try:
        val_bpb, memory_gb = float(val), float(mem) if mem else 0.0
    except ValueError:
        raise LedgerError(f"{path}:{number}: val_bpb {val!r} or memory_gb {mem!r} is not a number") from None
    if not commit or " " in commit:
        raise LedgerError(f"{path}:{number}: commit {commit!r} is not a short hash")
    return Row(commit, val_bpb, memory_gb, status, description.replace("\t", " "))


def _scan(path: Path, bad: Callable[[str, bool], None], whole_last_line: bool) -> list[Line]:
    """The rows of results.tsv at ``path`` with their line numbers (``[]`` when it is
    missing or empty). ``bad(message, torn)`` is called for a corrupt row and for a
    last line without its newline (``torn`` True), which with ``whole_last_line`` is
    read when it is a whole row. Raises LedgerError when the header is wrong."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").removeprefix("\ufeff").split("\n")
    torn = lines.pop()
    if not lines and not torn.strip():
        return []
    header = (lines[0] if lines else torn).rstrip("\r")
    if not _is_header(header):
        raise LedgerError(f"{path}:1: header is {header!r}, expected {chr(9).join(HEADER)!r}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            rows.append(Line(parse_row(path, number, line.rstrip("\r")), number))
        except LedgerError as exc:
            bad(str(exc), False)
    if torn.strip() and lines:
        number = len(lines) + 1
        row = None
        if whole_last_line:
            try:
                row = parse_row(path, number, torn.rstrip("\r"))
            except LedgerError:
                row = None
        if row is None:
            bad(f"{path}:{number}: the last line is incomplete (no newline at its end: a write was cut off): "
                f"{torn!r}", True)
        else:
            rows.append(Line(row, number))
    return rows


def read_rows(path: str | os.PathLike) -> list[Row]:
    """All rows of results.tsv (``[]`` when the file does not exist or is empty), as
    the engine reads it before it appends: strictly.

    Raises LedgerError naming ``path:line`` for a wrong header, a corrupt row or
    a last line without its newline (``torn_tail``).
    """
    def refuse(message: str, torn: bool) -> None:
        raise LedgerError(message + ("; complete or delete that line, then start again" if torn else ""))

    return [line.row for line in _scan(Path(path), refuse, whole_last_line=False)]


def read_lines(path: str | os.PathLike, warn: Callable[[str], None], whole_last_line: bool = False) -> list[Line]:
    """The rows of results.tsv with their line numbers, as a reader that only reports
    (cockpit report) reads it: a corrupt row and a last line without its newline are
    skipped with a ``warn`` line each; with ``whole_last_line`` (results.tsv alone: an
    upstream agent may end the file without one) such a line is read when it is a
    whole row. ``[]`` when the file is missing or empty. Raises LedgerError when the
    header is wrong."""
    def skip(message: str, torn: bool) -> None:
        warn(f"{message}; skipped")

    return _scan(Path(path), skip, whole_last_line)


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
