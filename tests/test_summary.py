"""Pure parsers of the run output contract."""

import math

from cockpit.rules.summary import (attention_backend, fail_reason, flush_tail, parse_step_line, parse_summary,
                             split_lines, summary_memory_gb, summary_val_bpb)

LINE = ("step 00042 (14.0%) | loss: 3.812345 | lrm: 1.00 | dt: 312ms | tok/sec: 1,680,000 | "
        "mfu: 39.8% | epoch: 1 | remaining: 258s")

SUMMARY = """step 00952 (100.0%) | loss: 2.9 | lrm: 0.00 | dt: 310ms | tok/sec: 1,690,000 | mfu: 39.9% | epoch: 1 | remaining: 0s
---
val_bpb:          0.997900
training_seconds: 300.1
total_seconds:    325.9
peak_vram_mb:     45060.2
mfu_percent:      39.80
total_tokens_M:   499.6
num_steps:        953
num_params_M:     50.3
depth:            8
"""


def test_step_line_exact():
    assert parse_step_line(LINE) == {
        "step": 42, "progress_pct": 14.0, "loss": 3.812345, "lrm": 1.0, "dt_ms": 312.0,
        "tok_per_s": 1_680_000.0, "mfu": 39.8, "epoch": 1, "remaining_s": 258.0,
    }


def test_step_line_variants():
    assert parse_step_line("  " + LINE + "  ")["step"] == 42
    assert math.isnan(parse_step_line(LINE.replace("3.812345", "nan"))["loss"])
    partial = parse_step_line("step 7 (1.5%) | loss: 4.0")
    assert partial["step"] == 7 and partial["mfu"] == 0.0 and partial["epoch"] == 0
    for text in ("", "---", "val_bpb: 1.0", "stepping up", "step 00042 (14.0%) | lrm: 1.00",
                 "Traceback (most recent call last):"):
        assert parse_step_line(text) is None


def test_summary_block():
    summary = parse_summary(SUMMARY)
    assert summary == {
        "val_bpb": 0.9979, "training_seconds": 300.1, "total_seconds": 325.9, "peak_vram_mb": 45060.2,
        "mfu_percent": 39.8, "total_tokens_M": 499.6, "num_steps": 953, "num_params_M": 50.3, "depth": 8,
    }
    assert isinstance(summary["num_steps"], int) and isinstance(summary["val_bpb"], float)
    assert summary_val_bpb(summary) == 0.9979
    assert abs(summary_memory_gb(summary) - 44.0041) < 1e-3


def test_summary_edge_cases():
    assert parse_summary("Traceback...\nRuntimeError: boom\n") == {}
    assert parse_summary("---\nval_bpb: 1.5\n---\nval_bpb: 1.2\n") == {"val_bpb": 1.2}
    assert parse_summary("x\r---\rval_bpb: 1.25\r\n") == {"val_bpb": 1.25}
    nan = parse_summary("---\nval_bpb: nan\ndevice: cuda\n")
    assert math.isnan(nan["val_bpb"]) and nan["device"] == "cuda"
    assert summary_val_bpb(nan) is None and summary_val_bpb({}) is None
    assert summary_val_bpb({"val_bpb": "oops"}) is None and summary_memory_gb({}) == 0.0


def test_split_lines_keeps_partial_tail():
    lines, tail = split_lines("", "step 1\rstep 2\rst")
    assert (lines, tail) == (["step 1", "step 2"], "st")
    lines, tail = split_lines(tail, "ep 3\r\nhello\n")
    assert (lines, tail) == (["step 3", "hello"], "")
    assert split_lines("abc", "") == ([], "abc")
    assert flush_tail("end") == ["end"] and flush_tail("") == []


def test_attention_backend_from_the_summary_else_the_first_attention_line():
    head = "device cuda\nattention: flex (FlashAttention-3 unavailable: no kernel for sm80)\n"
    text = head + LINE + "\r" + SUMMARY + "attention:        fa3:varunneal/flash-attention-3\n"
    summary = parse_summary(text)
    assert summary["attention"] == "fa3:varunneal/flash-attention-3"
    assert attention_backend(summary, text) == "fa3:varunneal/flash-attention-3"
    crashed = head + LINE + "\rattention: sdpa\nTraceback (most recent call last):\n"  # no summary block
    assert attention_backend(parse_summary(crashed), crashed) == "flex"
    assert attention_backend({}, "progress\rattention: sdpa-masked (device cpu)\r" + LINE) == "sdpa-masked"
    assert attention_backend(parse_summary(SUMMARY), SUMMARY) == ""  # an upstream harness says nothing
    assert attention_backend({"attention": ""}, "no attention: here\nattention:\n") == ""


def test_fail_reason_is_the_last_fail_line():
    text = ("attention: sdpa\nFAIL: first\nstep 1\rFAIL: profile h100 needs CUDA: NVIDIA driver 535.104 "
            "is too old  \r\nexit\n")
    assert fail_reason(text) == "profile h100 needs CUDA: NVIDIA driver 535.104 is too old"
    assert fail_reason("AssertionError: FAIL: not at the start\nFAILED tests\nfail: lower case\n") == ""
    assert fail_reason("") == ""
