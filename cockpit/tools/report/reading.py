"""Reading a workspace for the report: results.tsv through the one results reader
(cockpit.store.results), records.jsonl skipping corrupt lines, the session tags, and
each row matched to its experiment record (rows and records are appended in the
same order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from cockpit.tools.report.model import ReportError, Warn
from cockpit.store.ledger import LedgerError
from cockpit.store.records import read_records as ledger_records
from cockpit.store.results import Line, Row, clean_description, read_lines


def read_results(path: Path, warn: Warn, whole_last_line: bool = False) -> list[Line]:
    """The rows of results.tsv with their line numbers, read by the one results reader
    (cockpit.store.results ``read_lines``: corrupt lines and a cut-off last line
    skipped with a ``warn`` line each). Raises ReportError when the file is missing,
    its header is wrong or it has no row."""
    if not path.is_file():
        raise ReportError(f"no {path.name} in {path.parent}: nothing to report (run a session first)")
    try:
        rows = read_lines(path, warn, whole_last_line)
    except LedgerError as exc:
        raise ReportError(str(exc)) from None
    if not rows:
        raise ReportError(f"{path} has no results rows: nothing to report (run a session first)")
    return rows


def read_records(path: Path, warn: Warn) -> list[dict]:
    """The objects of records.jsonl, skipping (with a ``warn`` line each) a line that
    is not a JSON object; ``[]`` when the file is missing or holds none (the
    report is then made from results.tsv alone)."""
    if not path.is_file():
        return []
    return ledger_records(path, skip=warn)


def session_tags(records: list[dict]) -> list[str]:
    """The tags of ``records`` in the order they first appear (oldest session first)."""
    tags: list[str] = []
    for record in records:
        tag = record.get("tag")
        if isinstance(tag, str) and tag and tag not in tags:
            tags.append(tag)
    return tags


def newest_tag(records: list[dict]) -> Optional[str]:
    """The tag of the newest session: that of the last record with a tag, or None."""
    for record in reversed(records):
        tag = record.get("tag")
        if isinstance(tag, str) and tag:
            return tag
    return None


def _matches(row: Row, record: dict, strict: bool) -> bool:
    if str(record.get("commit", ""))[:7] != row.commit[:7] or record.get("status") != row.status:
        return False
    return not strict or clean_description(str(record.get("description", ""))) == row.description


def match_records(rows: list[Row], records: list[dict]) -> list[Optional[dict]]:
    """For each row, its experiment record or None. Both files are appended in the
    same order: a row takes the next experiment record with its commit, status and
    description, else (a description edited by hand) the very next record when
    commit and status agree."""
    experiments = [r for r in records if r.get("kind") == "experiment"]
    matched: list[Optional[dict]] = []
    start = 0
    for row in rows:
        found = next((j for j in range(start, len(experiments)) if _matches(row, experiments[j], True)), None)
        if found is None and start < len(experiments) and _matches(row, experiments[start], False):
            found = start
        matched.append(None if found is None else experiments[found])
        if found is not None:
            start = found + 1
    return matched


def row_tags(matched: list[Optional[dict]]) -> list[Optional[str]]:
    """Each row's session tag: its record's, else the row before it's (else the one after)."""
    tags = [m.get("tag") if m else None for m in matched]
    for i in range(1, len(tags)):
        tags[i] = tags[i] or tags[i - 1]
    for i in range(len(tags) - 2, -1, -1):
        tags[i] = tags[i] or tags[i + 1]
    return tags
