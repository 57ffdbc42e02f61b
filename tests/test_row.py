"""One results row type (cockpit.row ``Row``) with narrow views, not five copies.

The store reads and writes it, the engine keeps it, the agent is shown it, the
report and the table wrap it. A scan of the tree checks that no other class
declares the results.tsv columns again (the RowLogged event, the wire's flat
copy, and the records.jsonl record are allowed), and fails on a planted copy."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from cockpit.app.widgets.results_table import TableRow
from cockpit.engine.context import history
from cockpit.row import Row, score_of
from cockpit.store.results import append_row, read_rows
from cockpit.tools.report.model import ReportRow

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = {"commit", "val_bpb", "memory_gb", "status", "description"}
# The row; the RowLogged event, the wire's flat copy of it (docs/CONTRACTS.md); and the
# records.jsonl record, which holds the row's columns among the experiment's other facts.
ALLOWED = {("cockpit/row.py", "Row"), ("cockpit/events.py", "RowLogged"),
           ("cockpit/store/records.py", "ExperimentRecord")}


def row_copies(source: str, path: str) -> set[tuple[str, str]]:
    """(path, class) of every class in ``source`` whose annotated fields hold all five columns."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            fields = {s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
            if COLUMNS <= fields:
                found.add((path, node.name))
    return found


def copies_in_tree() -> set[tuple[str, str]]:
    found = set()
    for path in sorted((ROOT / "cockpit").rglob("*.py")):
        found |= row_copies(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())
    return found


def test_no_class_but_row_declares_the_results_columns():
    assert copies_in_tree() == ALLOWED


def test_the_scan_finds_a_planted_copy():
    planted = "class HistoryRow:\n    commit: str\n    val_bpb: float\n    memory_gb: float\n" \
              "    status: str\n    description: str\n"
    assert row_copies(planted, "cockpit/agents/base.py") == {("cockpit/agents/base.py", "HistoryRow")}


@pytest.mark.parametrize("status, value, score", [
    ("keep", 0.9979, 0.9979), ("discard", 1.2, 1.2), ("crash", 0.0, None), ("crash", 1.1, None),
    ("CRASH", 1.1, None), ("keep", 0.0, None), ("keep", math.nan, None), ("keep", math.inf, None),
    ("keep", -1.0, None),
])
def test_score_is_the_val_bpb_a_row_has(status, value, score):
    assert Row("a1b2c3d", value, 1.0, status, "x").score == score


def test_score_of_refuses_what_is_not_a_number():
    assert score_of(True) is None
    assert score_of("1.0") is None
    assert score_of(None) is None
    assert score_of(2) == 2.0


def test_results_tsv_the_agents_history_and_the_views_hold_one_row(tmp_path: Path):
    tsv = tmp_path / "results.tsv"
    written = [Row("a1b2c3d", 1.0, 40.0, "keep", "baseline"), Row("b2c3d4e", 0.0, 0.0, "crash", "OOM")]
    for row in written:
        append_row(tsv, row)
    rows = read_rows(tsv)
    assert rows == written and all(type(r) is Row for r in rows)
    assert history(tsv) == tuple(written)  # the agent is shown the rows themselves
    report = ReportRow(Row("b2c3d4e", 0.0, 0.0, "crash", "OOM", experiment=1), line=3)
    assert (report.experiment, report.commit, report.val_bpb, report.status) == (1, "b2c3d4e", None, "crash")
    shown = TableRow.from_cells({"commit": "a1b2c3d4e5", "val_bpb": "0.997900", "memory_gb": "",
                                 "status": "KEEP", "description": "baseline"}, 0)
    assert shown.row == Row("a1b2c3d", 0.9979, 0.0, "keep", "baseline", experiment=0)
    assert (shown.val_bpb, shown.status, shown.delta_sigma) == (0.9979, "keep", None)
