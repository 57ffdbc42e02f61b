"""bench/fault_table.py's core, each fault kind injected 3 times at different
moments (as the printed table does): nothing lost, nothing corrupt, no process
left behind, nothing hostile got past containment (escapes)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "fault_table.py"
_spec = importlib.util.spec_from_file_location("fault_table", SCRIPT)
fault_table = sys.modules["fault_table"] = importlib.util.module_from_spec(_spec)  # dataclasses need it
_spec.loader.exec_module(fault_table)

FAULTS = fault_table.faults(3)


@pytest.mark.slow
@pytest.mark.parametrize("name, injections", FAULTS, ids=[name for name, _ in FAULTS])
def test_each_fault_three_times_loses_nothing(name, injections):
    assert len(injections) == 3
    for inject in injections:
        assert fault_table.run_one(inject) == fault_table.Outcome(0, 0, 0, 0)


def test_the_checks_see_a_lost_row_and_a_corrupt_file(tmp_path):
    ws, escapes = fault_table.training_fault("crash", 0)(tmp_path, "faultmark-selfcheck")
    assert (fault_table.rows_lost(ws), fault_table.files_corrupt(ws), escapes) == (0, 0, 0)
    lines = (ws / "results.tsv").read_text().splitlines(keepends=True)
    (ws / "results.tsv").write_text("".join(lines[:-1]))
    assert fault_table.rows_lost(ws) > 0
    (ws / "results.tsv").write_text("".join(lines) + lines[-1])  # a second row of the same run
    assert fault_table.rows_lost(ws) == 1
    (ws / "results.tsv").write_text("".join(lines) + "abc\t1")
    assert fault_table.files_corrupt(ws) == 1
    with open(ws / "records.jsonl", "a") as records:
        records.write('{"torn": \n')
    assert fault_table.files_corrupt(ws) == 2
    (ws / "results.tsv").unlink()  # gone, though the journal opened experiments
    assert fault_table.files_corrupt(ws) == 2


def test_the_escape_checks_see_a_key_that_got_out(tmp_path):
    ws, escapes = fault_table.key_hunt(0)(tmp_path, "faultmark-selfcheck")
    assert escapes == 0 and fault_table.key_escapes(ws) == 0
    (ws / "logs" / "leak.log").write_text("the key, reversed: " + fault_table.KEY[::-1])
    assert fault_table.key_escapes(ws) == 1
    with open(ws / "hunt.json", "a") as hunt:  # a run that found one
        hunt.write('{"OPENAI_API_KEY": "[redacted]"}\n')
    assert fault_table.key_escapes(ws) == 2
    assert fault_table.run_one(lambda root, marker: (ws, 2)) == fault_table.Outcome(0, 0, 0, 2)


def test_the_table_prints_every_kind():
    text = fault_table.format_table([(name, 3, fault_table.Outcome(0, 0, 0, 0)) for name, _ in FAULTS])
    assert text.count("\n") == len(FAULTS) + 1 and "| train.py oom | 3 | 0 | 0 | 0 | 0 |" in text
    assert text.splitlines()[0].endswith("| orphan processes | escapes |")
    assert "| key hunt | 3 | 0 | 0 | 0 | 0 |" in text and "| slow clients | 3 | 0 | 0 | 0 | 0 |" in text
