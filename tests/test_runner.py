"""Runner tests: streaming split on \\r and \\n, logging, hard kill of a process group."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine_support import process_alive

from cockpit.events import LogLine, StepLogged
from cockpit.training.runner import Run, RunResult

STEP = ("step {:05d} (50.0%) | loss: 3.500000 | lrm: 1.00 | dt: 10ms | tok/sec: 1,000 | "
        "mfu: 1.0% | epoch: 1 | remaining: 5s")


async def gone(pid: int, timeout_s: float = 2.5) -> bool:
    """True once process ``pid`` has exited (polled every 0.05 s, at most ``timeout_s``)."""
    for _ in range(int(timeout_s / 0.05)):
        if not process_alive(pid):
            return True
        await asyncio.sleep(0.05)
    return not process_alive(pid)


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "child.py"
    path.write_text(body)
    return [sys.executable, "-u", str(path)]


async def test_stream_is_split_on_cr_and_lf_and_logged(tmp_path):
    body = f"""
import sys, time
sys.stdout.write("hello\\n{STEP.format(1)}\\r")
sys.stdout.flush()
time.sleep(0.3)
sys.stdout.write("{STEP.format(2)}\\rpart")
sys.stdout.flush()
time.sleep(0.1)
sys.stdout.write("ial\\r\\n")
print("oops", file=sys.stderr)
print("no newline at end", end="")
"""
    events, seen_at = [], []

    def emit(event):
        events.append(event)
        seen_at.append(time.monotonic())

    run = Run(script(tmp_path, body), tmp_path, tmp_path / "logs" / "run.log", experiment=7, emit=emit)
    result = await run.wait()
    assert result.returncode == 0 and not result.timed_out and not result.stopped
    assert [type(e).__name__ for e in events] == ["LogLine", "StepLogged", "StepLogged", "LogLine",
                                                  "LogLine", "LogLine"]
    assert [e.text for e in events if isinstance(e, LogLine)] == ["hello", "partial", "oops", "no newline at end"]
    steps = [e for e in events if isinstance(e, StepLogged)]
    assert [s.step for s in steps] == [1, 2] and steps[0].experiment == 7
    assert seen_at[2] - seen_at[1] > 0.2  # the first step arrived before the process went on
    assert (tmp_path / "logs" / "run.log").read_bytes().decode() == result.text
    assert result.text.startswith("hello\n") and "\r" in result.text
    timings = result.timings()
    assert timings["training_s"] > 0.2 and abs(sum(list(timings.values())[:3]) - timings["wall_s"]) < 1e-6


async def test_hard_limit_kills_the_whole_group(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    body = f"""
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)   # only SIGKILL ends this one
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
open({str(pid_file)!r}, "w").write(str(child.pid))
print("started", flush=True)
time.sleep(600)
"""
    run = Run(script(tmp_path, body), tmp_path, tmp_path / "run.log", hard_limit_s=1.0, kill_grace_s=0.3)
    started = time.monotonic()
    result = await run.wait()
    assert result.timed_out and not result.stopped
    assert result.returncode == -9
    assert time.monotonic() - started < 5
    assert await gone(int(pid_file.read_text()))


async def test_kill_stops_a_run(tmp_path):
    body = "import time\nprint('ready', flush=True)\ntime.sleep(600)\n"
    lines = []
    run = Run(script(tmp_path, body), tmp_path, tmp_path / "run.log", kill_grace_s=0.5,
              emit=lambda e: (lines.append(e), run.kill()))
    result = await asyncio.wait_for(run.wait(), timeout=10)
    assert result.stopped and not result.timed_out
    assert result.returncode == -15  # SIGTERM was enough
    assert [e.text for e in lines] == ["ready"]


async def test_grandchild_holding_the_pipe_does_not_block(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    body = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open({str(pid_file)!r}, "w").write(str(child.pid))
print("parent done")
"""
    started = time.monotonic()
    result = await Run(script(tmp_path, body), tmp_path, tmp_path / "run.log").wait()
    assert result.returncode == 0 and "parent done" in result.text
    assert time.monotonic() - started < 8
    assert await gone(int(pid_file.read_text()))


async def test_env_and_command_failure(tmp_path):
    body = "import os\nprint(os.environ['PYTHONUNBUFFERED'], os.environ['COCKPIT_TIME_BUDGET'])\nraise SystemExit(3)\n"
    run = Run(script(tmp_path, body), tmp_path, tmp_path / "run.log", env={"COCKPIT_TIME_BUDGET": "1.5"})
    result = await run.wait()
    assert result.returncode == 3 and result.text.strip() == "1 1.5"
    assert result.timings()["training_s"] == 0.0


async def test_a_setsid_grandchild_is_swept(tmp_path):
    body = """
import os, subprocess, sys, time
kid = subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); time.sleep(600)"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("grandchild", kid.pid, flush=True)
time.sleep(0.3)
"""
    result = await Run(script(tmp_path, body), tmp_path, tmp_path / "run.log").wait()
    pid = int(result.text.split("grandchild ")[1].split()[0])
    assert result.returncode == 0 and result.stray_processes == 1
    assert await gone(pid)


async def test_start_up_runs_to_the_first_counted_step(tmp_path):
    """Warm-up steps print 0% progress (their time is not counted); start-up ends where
    the first counted step began: the last 0% line's time minus that step's own dt."""
    line = ("step {:05d} ({:.1f}%) | loss: 4.0 | lrm: 1.00 | dt: {}ms | tok/sec: 1,000 | mfu: 1.0% | "
            "epoch: 1 | remaining: 1s")
    body = f"""
import sys, time
def step(n, pct, dt_ms, sleep_s):
    time.sleep(sleep_s)
    sys.stdout.write({line!r}.format(n, pct, dt_ms) + "\\r")
    sys.stdout.flush()
step(0, 0.0, 600, 0.6)   # compile: not counted
step(1, 0.0, 800, 0.8)   # warm-up: not counted
step(2, 0.0, 800, 0.8)   # the first counted step: began at 1.4 s, its line (still 0%) at 2.2 s
step(3, 40.0, 800, 0.8)  # its progress includes step 2
step(4, 80.0, 800, 0.8)
"""
    result = await Run(script(tmp_path, body), tmp_path, tmp_path / "run.log").wait()
    timings = result.timings()
    assert result.counted_start is not None
    first_line = result.first_step - result.started
    assert 1.3 <= timings["startup_s"] <= 1.4 + 0.6  # compile + warm-up + the interpreter
    assert timings["startup_s"] > first_line + 0.5  # not the first step line (0.6 s + the interpreter)
    assert abs(timings["training_s"] - 2.4) < 0.5  # steps 2-4


@pytest.mark.parametrize("limit", [float("inf"), float("nan"), 0.0, -1.0])
def test_a_hard_limit_that_is_not_finite_and_positive_is_refused(tmp_path, limit):
    """inf would lift the limit and nan would kill every run at once: neither reaches a run."""
    with pytest.raises(ValueError, match="positive, finite"):
        Run([sys.executable, "-c", "pass"], tmp_path, tmp_path / "log.txt", hard_limit_s=limit)


ESCAPEE = """
import os, sys, time
# double fork: the middle process exits at once, so the escapee is nobody's child but a subreaper's
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        # no COCKPIT_RUN_ID, no environment at all: the run-id sweep cannot see it; it has a child too
        os.execve(sys.executable, [sys.executable, "-c",
                  "import os, subprocess, sys, time\\n"
                  "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\\n"
                  "print('escapee', os.getpid(), kid.pid, flush=True)\\n"
                  "time.sleep(600)"], {})
    os._exit(0)
time.sleep(1.5)
"""


def _alive_or_zombie(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


async def test_a_setsid_escapee_without_the_run_id_is_killed_by_the_process_tree(tmp_path):
    """The escapee cleared its environment and left the run's session and process tree
    (double fork): re-parented to the engine (a child subreaper), it and its child are
    killed and reaped when the run ends; processes the run did not start are spared."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        result = await Run(script(tmp_path, ESCAPEE), tmp_path, tmp_path / "run.log").wait()
        escapee, kid = map(int, result.text.split("escapee ")[1].split()[:2])
        assert result.returncode == 0 and result.stray_processes >= 2
        assert await gone(escapee) and await gone(kid)
        assert _alive_or_zombie(escapee) == "gone" and _alive_or_zombie(kid) == "gone"  # reaped, no zombie
        assert bystander.poll() is None  # another session, but started before the run: not the run's
    finally:
        bystander.kill()
        bystander.wait()


def test_failure_is_the_fail_line_when_the_run_printed_one():
    def result(text: str) -> RunResult:
        return RunResult(1, False, False, text, 0.0, 1.0, None, None)

    text = "attention: sdpa\nFAIL: profile h100 needs CUDA: no NVIDIA driver\n[W shutdown] a warning after it\n"
    assert result(text).last_line() == "[W shutdown] a warning after it"
    assert result(text).failure() == "FAIL: profile h100 needs CUDA: no NVIDIA driver"
    assert result("Traceback\nRuntimeError: boom\n").failure() == "RuntimeError: boom"
    assert result("").failure() == "no output"
