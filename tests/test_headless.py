"""Headless printer: one line per event, throttled steps, table rows, final summary."""

import io

from cockpit.events import LogLine, PhaseChanged, RowLogged, RunFinished, SessionEnded, StepLogged
from cockpit.serve.headless import HeadlessPrinter


def _step(n):
    return StepLogged(1, n, 10.0, 3.5, 1.0, 300.0, 1_680_000.0, 39.8, 1, 250.0)


def test_printer_lines():
    out = io.StringIO()
    printer = HeadlessPrinter(out, step_interval_s=60.0)
    for event in (PhaseChanged(1, "training"), _step(1), _step(2), LogLine(1, "warning: x"),
                  LogLine(1, "---"), LogLine(1, "val_bpb:          0.997900"),
                  RunFinished(1, "abc1234", 0, False, {"val_bpb": 0.9979}, 12.5),
                  RowLogged(0, "abc1234", 1.0, 44.0, "keep", "baseline", 1.0),
                  RowLogged(1, "bcd2345", 0.9979, 44.0, "keep", "MATRIX_LR 0.04 -> 0.08", 0.9979),
                  SessionEnded("max-experiments", 2)):
        printer(event)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[exp 1] step 1 (10.0%) loss 3.5000 | 1,680,000 tok/s | mfu 39.8% | 250s left"
    assert lines[1] == "    warning: x"
    assert lines[2] == "[exp 1] finished (exit 0) in 12.5s, val_bpb 0.997900"
    assert lines[3].split() == ["exp", "commit", "val_bpb", "mem_gb", "status", "description"]
    assert lines[5] == "   1  bcd2345   0.997900    44.0  keep     MATRIX_LR 0.04 -> 0.08"
    assert lines[6] == ("session ended (max-experiments): 2 experiments, 2 kept, 0 discarded, 0 crashed; "
                        "val_bpb 1.000000 -> 0.997900 (-0.002100)")


def test_key_shaped_strings_never_reach_headless_output_or_engine_log():
    """Headless output (and logs/engine.log, which is the daemon's HeadlessPrinter on stdout)
    redacts provider-key shapes whatever their source: Google AIza..., GitHub ghp_...,
    Hugging Face hf_..., OpenAI sk-..."""
    from cockpit.events import EngineMessage

    keys = ["AIza" + "S" * 35, "ghp_" + "a1" * 18, "hf_" + "Q" * 34, "sk-" + "z9" * 12]
    out = io.StringIO()
    printer = HeadlessPrinter(out)
    for key in keys:
        printer(EngineMessage(f"litellm said: invalid key {key} (401)", "error"))
    text = out.getvalue()
    assert text.count("invalid key") == 4  # every line printed ...
    for key in keys:
        assert key not in text and key[:12] not in text  # ... none with the key or a prefix of it
