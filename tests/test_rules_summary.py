"""The run output parsers (cockpit.rules.summary) on the lines tests/test_summary.py does
not try: stray colons, unknown keys, malformed summary lines, types, several FAIL lines."""

from __future__ import annotations

from cockpit.rules.summary import fail_reason, parse_step_line, parse_summary


def test_a_value_with_a_colon_is_read_from_its_first_colon():
    out = parse_step_line("step 00001 (1.0%) | loss: 3.5:1 | dt: 12ms")
    assert out is not None and out["loss"] == 3.5 and out["dt_ms"] == 12.0


def test_unknown_or_colonless_parts_are_skipped_without_raising():
    out = parse_step_line("step 00002 (2.0%) | loss: 3.25 | note: 7 | lrm | mfu: 40%")
    assert out["loss"] == 3.25 and out["mfu"] == 40.0 and out["lrm"] == 0.0 and "note" not in out


def test_counts_are_ints_and_measures_floats():
    out = parse_step_line("step 00003 (3.0%) | loss: 3 | epoch: 2 | remaining: 100s")
    assert type(out["epoch"]) is int and out["epoch"] == 2
    assert type(out["loss"]) is float and type(out["remaining_s"]) is float and type(out["step"]) is int
    assert type(parse_step_line("step 1 (1%) | loss: 3")["epoch"]) is int  # the default 0 too


def test_summary_lines_without_a_key_are_skipped_and_reading_goes_on():
    text = "---\nval_bpb: 1.0\nnot a line\n: 5\ntotal tokens: 7\nattention: sdpa\nnum_steps: 953\ndepth: 8.0\n"
    summary = parse_summary(text)
    assert summary == {"val_bpb": 1.0, "attention": "sdpa", "num_steps": 953, "depth": 8}
    assert type(summary["num_steps"]) is int and type(summary["depth"]) is int


def test_only_the_count_keys_become_ints():
    summary = parse_summary("---\ntraining_seconds: 300\nnum_steps: 952.5\nval_bpb: 1\n")
    assert type(summary["training_seconds"]) is float and summary["training_seconds"] == 300.0
    assert type(summary["num_steps"]) is float and summary["num_steps"] == 952.5  # not a whole count: kept
    assert type(summary["val_bpb"]) is float


def test_the_last_of_several_fail_lines_is_the_reason():
    assert fail_reason("FAIL: first\nFAIL: second\nFAIL: third\n") == "third"
    assert fail_reason("FAIL: only") == "only"
