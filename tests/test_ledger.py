"""results.tsv and records.jsonl: exact format, durable appends, corrupt lines reported."""

import math

import pandas as pd
import pytest

from cockpit.store import ledger
from cockpit.store.ledger import LedgerError
from cockpit.store.records import ExperimentRecord, append_record, read_records
from cockpit.store.results import Row, append_row, format_row, read_rows, read_lines


def test_rows_are_formatted_exactly_as_upstream():
    assert format_row(Row("a1b2c3d4e5f6", 0.9979, 44.04, "keep", "baseline")) == "a1b2c3d\t0.997900\t44.0\tkeep\tbaseline\n"
    assert format_row(Row("c3d4e5f", 1.005, 44.0, "discard", "switch to GeLU activation")) == \
        "c3d4e5f\t1.005000\t44.0\tdiscard\tswitch to GeLU activation\n"
    assert format_row(Row("d4e5f6a", 1.3, 12.3, "crash", "double width\t(OOM)\nsecond line")) == \
        "d4e5f6a\t0.000000\t0.0\tcrash\tdouble width (OOM) second line\n"
    assert format_row(Row("d4e5f6a", math.nan, math.inf, "discard", "")) == "d4e5f6a\t0.000000\t0.0\tdiscard\t(no description)\n"
    with pytest.raises(ValueError, match="status"):
        format_row(Row("abc1234", 1.0, 1.0, "kept", "x"))


def test_append_writes_header_once_and_fsyncs(tmp_path, monkeypatch):
    synced = []
    real_fsync = ledger.os.fsync
    monkeypatch.setattr(ledger.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    path = tmp_path / "results.tsv"
    append_row(path, Row("a1b2c3d", 0.9979, 44.0, "keep", "baseline"))
    append_row(path, Row("b2c3d4e", 0.9932, 44.2, "keep", "increase LR to 0.04"))
    assert path.read_text() == (
        "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"
        "a1b2c3d\t0.997900\t44.0\tkeep\tbaseline\n"
        "b2c3d4e\t0.993200\t44.2\tkeep\tincrease LR to 0.04\n"
    )
    assert len(synced) == 2
    assert read_rows(path) == [Row("a1b2c3d", 0.9979, 44.0, "keep", "baseline"),
                               Row("b2c3d4e", 0.9932, 44.2, "keep", "increase LR to 0.04")]


def test_pandas_reads_it(tmp_path):
    path = tmp_path / "results.tsv"
    append_row(path, Row("a1b2c3d", 0.9979, 44.0, "keep", "baseline"))
    append_row(path, Row("d4e5f6a", 0.0, 0.0, "crash", 'quote " and, comma'))
    frame = pd.read_csv(path, sep="\t")
    assert list(frame.columns) == ["commit", "val_bpb", "memory_gb", "status", "description"]
    assert frame["val_bpb"].tolist() == [0.9979, 0.0] and frame["status"].tolist() == ["keep", "crash"]


def test_corrupt_line_is_reported_with_its_number(tmp_path):
    path = tmp_path / "results.tsv"
    append_row(path, Row("a1b2c3d", 0.9979, 44.0, "keep", "baseline"))
    with open(path, "a") as handle:
        handle.write("b2c3d4e\tnot-a-number\t44.0\tkeep\tx\n")
    before = path.read_bytes()
    with pytest.raises(LedgerError, match=r"results.tsv:3: val_bpb 'not-a-number'"):
        read_rows(path)
    path.write_text(before.decode().replace("\tkeep\tx", "\tkeep"))
    with pytest.raises(LedgerError, match=r":3: expected 5 tab-separated fields, found 4"):
        read_rows(path)
    (tmp_path / "other.tsv").write_text("a\tb\n")
    with pytest.raises(LedgerError, match=r"other.tsv:1: header"):
        append_row(tmp_path / "other.tsv", Row("a1b2c3d", 1.0, 1.0, "keep", "x"))
    assert read_rows(tmp_path / "missing.tsv") == []


def test_append_after_a_torn_line_starts_a_new_line(tmp_path):
    path = tmp_path / "results.tsv"
    append_row(path, Row("a1b2c3d", 0.9979, 44.0, "keep", "baseline"))
    with open(path, "a") as handle:
        handle.write("b2c3d4e\t0.99")  # a write cut short by a crash
    append_row(path, Row("c3d4e5f", 0.99, 44.0, "discard", "x"))
    assert path.read_text().splitlines()[-1] == "c3d4e5f\t0.990000\t44.0\tdiscard\tx"
    with pytest.raises(LedgerError, match=":3:"):
        read_rows(path)


def test_records_jsonl(tmp_path):
    path = tmp_path / "records.jsonl"
    record = ExperimentRecord(kind="experiment", experiment=1, tag="t", status="crash", description="d",
                              agent="offline", profile="cpu", budget_s=300.0, program_sha256="p",
                              harness_sha256="h", started="s", ended="e", summary={"val_bpb": math.nan})
    append_record(path, record)
    append_record(path, {"kind": "dropped", "errors": ["x"]})
    first, second = read_records(path)
    assert first["summary"] == {"val_bpb": None} and first["val_bpb"] is None and first["timings"] == {}
    assert first["attention"] == ""  # unknown until a run says (cockpit.rules.summary attention_backend)
    assert second == {"kind": "dropped", "errors": ["x"]}
    with open(path, "a") as handle:
        handle.write("{not json\n")
    with pytest.raises(LedgerError, match=r"records.jsonl:3: not valid JSON"):
        read_records(path)


def test_the_engine_and_the_report_read_results_tsv_with_one_reader(tmp_path):
    """read_rows (the engine: refuses) and read_lines (the report: skips) parse every
    line alike, upstream's variations included; only what they do with a bad line differs."""
    path = tmp_path / "results.tsv"
    path.write_text("\ufeffCommit\tval_bpb\tmemory_gb\tStatus\tdescription\n"
                    "baseline\t0.997900\t44.0\tkeep\tbaseline\n"
                    "b2c3d4e\t 0.9950 \t\tKEEP\tlr 0.04 -> 0.03\t(tuned)\n"
                    "\n"
                    "c3d4e5f\t0.0\t0.0\tcrash\tOOM\n")
    warnings = []
    rows = read_rows(path)
    assert rows == [line.row for line in read_lines(path, warnings.append)] and warnings == []
    assert rows[1] == Row("b2c3d4e", 0.995, 0.0, "keep", "lr 0.04 -> 0.03 (tuned)")
    assert [line.line for line in read_lines(path, warnings.append)] == [2, 3, 5]
    with open(path, "a") as handle:
        handle.write("d4e5f6a\tnan?\t1.0\tdiscard\tx\n")
    with pytest.raises(LedgerError, match=r"results.tsv:6: val_bpb 'nan\?'") as refused:
        read_rows(path)
    assert len(read_lines(path, warnings.append)) == 3 and warnings == [f"{refused.value}; skipped"]
