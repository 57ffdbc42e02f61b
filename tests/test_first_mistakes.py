"""First mistakes end in one line, never a traceback, in both loops.

The real ``cockpit --headless`` command with ``--agent litellm`` settings as a
new user gets them wrong: the API key not exported, a model name the server
does not know, an api_base nobody listens on, a binary or an empty
program.md. Each case runs in the pipelined loop (the default: the first
proposal is asked while the baseline trains) and in the serial one
(``--no-pipeline``). The engine must pause after the baseline with exactly one
error line saying what to fix; then the user fixes it and either resumes the
paused engine (SIGUSR1, as the headless pause line says) or, where the fix is
in the environment or cockpit.toml, stops it and types the same command
again, which continues the session (no second baseline). Either way the
session then ends normally with its rows.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_support import LR_COMMENT, make_workspace, set_line
from openai_server import OpenAIServer, error, reply as answer

from cockpit.store.results import read_rows

pytestmark = pytest.mark.slow

COCKPIT = Path(sys.executable).parent / "cockpit"
GOOD = answer(set_line("MATRIX_LR", "0.04", "0.08", LR_COMMENT, "double the Muon lr"))
PAUSED = "paused (resume: kill -USR1"
CASES = ["missing key", "wrong model", "unreachable api_base", "binary program.md", "empty program.md"]


def _toml(model: str, api_base: str = "") -> str:
    base = f'api_base = "{api_base}"\n' if api_base else ""
    return (f'profile = "tiny"\n\n[agent]\nname = "litellm"\nmodel = "{model}"\n{base}'
            'timeout_s = 10\nmax_retries = 0\n')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _drive(args: list[str], env: dict, on_pause, deadline_s: float = 120.0) -> tuple[int, str]:
    """Run the command; call ``on_pause(proc)`` at each headless pause line. (exit code, output)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    started = time.monotonic()
    try:
        for line in proc.stdout:
            lines.append(line)
            if PAUSED in line:
                on_pause(proc)
            assert time.monotonic() - started < deadline_s, "the session took too long:\n" + "".join(lines)
        return proc.wait(timeout=30), "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipelined", "serial"])
@pytest.mark.parametrize("case", CASES)
def test_a_first_mistake_pauses_with_one_line_and_the_session_goes_on_after_the_fix(tmp_path, case, pipeline):
    port = _free_port()
    with OpenAIServer([error(404)] if case == "wrong model" else [], lifetime_s=200) as server:
        ws_path = tmp_path / "ws"
        if case == "missing key":  # a real provider's model, its key not exported
            toml, env = _toml("openai/gpt-4o-mini"), _env()
        elif case == "wrong model":
            toml, env = _toml("openai/gpt-4o-mni", server.api_base), _env()
        elif case == "unreachable api_base":
            toml, env = _toml("openai/test-model", f"http://127.0.0.1:{port}/v1"), _env()
        else:
            toml, env = _toml("openai/test-model", server.api_base), _env()
        ws = make_workspace(ws_path, toml=toml)
        if case == "binary program.md":
            ws.program_md.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
        elif case == "empty program.md":
            ws.program_md.write_text("")
        args = [str(COCKPIT), "--workspace", str(ws_path), "--headless", "--max-experiments", "2",
                "--budget", "1", "--tag", "first"] + ([] if pipeline else ["--no-pipeline"])
        restart = case in ("missing key", "wrong model")  # fixed in the environment / cockpit.toml
        later = OpenAIServer([GOOD], lifetime_s=200)

        def on_pause(proc):
            if restart:
                proc.send_signal(signal.SIGTERM)  # the user stops it (cockpit stop does the same)
                return
            if case == "unreachable api_base":
                later.start(port)  # the server the api_base names is up now
            else:
                ws.program_md.write_text("# program\nTry learning rates.\n")
                server.script.append(GOOD)
            proc.send_signal(signal.SIGUSR1)

        try:
            code, out = _drive(args, env, on_pause)
            errors = [line for line in out.splitlines() if line.startswith("[error]")]
            assert "Traceback" not in out, out[-3000:]
            expected = {"missing key": "OPENAI_API_KEY is not set in the environment",
                        "wrong model": "check the model name",
                        "unreachable api_base": f"127.0.0.1:{port}",
                        "binary program.md": "cannot read the program: program.md is not UTF-8 text",
                        "empty program.md": "cannot read the program: program.md is empty"}[case]
            assert len(errors) == 1 and expected in errors[0], out[-3000:]
            assert errors[0].count("then resume") == 1 and "paused" in errors[0], errors[0]
            assert out.count(PAUSED) == 1 and "[exp 0] training" in out
            if restart:
                assert code == 0 and [r.status for r in read_rows(ws.results_tsv)] == ["keep"]
                # the fix, then the same command again
                if case == "missing key":  # exported now (the base URL stands in for the provider's)
                    env = _env(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=server.api_base)
                else:
                    (ws_path / "cockpit.toml").write_text(_toml("openai/test-model", server.api_base))
                server.script.append(GOOD)
                code, again = _drive(args, env, lambda proc: proc.kill())
                assert "Traceback" not in again and "[error]" not in again, again[-3000:]
                assert "resumed session first" in again and "[exp 0] training" not in again, again[-3000:]
                out += again
            assert code == 0, out[-3000:]
            rows = read_rows(ws.results_tsv)
            assert [(r.status, r.description) for r in rows] == [("keep", "baseline"), ("keep", "double the Muon lr")]
            assert out.count("[exp 0] training") == 1 + 3  # one baseline (and its 3 noise re-runs), never again
        finally:
            later.stop()
