"""The hard limit follows the budget's clock (cockpit.training.budget_limit): on the CPU
clock a run that waits is not killed when its wall time passes the limit, one that
computes past it is, a hung one ends at the wall backstop; the TIME_BUDGET probe reads
the clock from prepare.py and the session hands it to every run."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from cockpit.rules.budget_clock import BudgetClock
from cockpit.store.workspace import WorkspaceError, harness_budget
from cockpit.training.budget_limit import WALL_BACKSTOP, group_cpu_seconds
from cockpit.training.runner import Run
from engine_support import ScriptedAgent, make_workspace, run_session
from cockpit.engine.ratchet import SessionConfig
from cockpit.store.journal import Journal
from cockpit.store.settings import Settings

CPU = BudgetClock("cpu", 1)
SPIN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end:\n    pass\nprint('done')\n"


def command(body: str) -> list[str]:
    return [sys.executable, "-c", body]


async def test_a_waiting_run_outlives_a_cpu_clock_limit_in_wall_seconds(tmp_path):
    """A run that sleeps 2 s under a 1 s limit on the CPU clock ends on its own (its CPU
    seconds stay far below 1); on the wall clock the same limit kills it."""
    body = "import time\ntime.sleep(2)\nprint('slept')\n"
    on_cpu = await Run(command(body), tmp_path, tmp_path / "cpu.log", hard_limit_s=1.0, kill_grace_s=0.3,
                       limit_clock=CPU).wait()
    assert on_cpu.returncode == 0 and not on_cpu.timed_out and "slept" in on_cpu.text
    on_wall = await Run(command(body), tmp_path, tmp_path / "wall.log", hard_limit_s=1.0, kill_grace_s=0.3).wait()
    assert on_wall.timed_out and "slept" not in on_wall.text


async def test_a_run_that_computes_past_the_limit_is_killed_on_the_cpu_clock(tmp_path):
    started = time.monotonic()
    result = await Run(command(SPIN.format(s=30)), tmp_path, tmp_path / "run.log", hard_limit_s=1.0,
                       kill_grace_s=0.3, limit_clock=CPU).wait()
    assert result.timed_out and result.returncode < 0 and "done" not in result.text
    assert 1.0 <= time.monotonic() - started < 1.0 * WALL_BACKSTOP


async def test_the_threads_divide_the_cpu_seconds(tmp_path):
    """With the clock's divisor at 4, 1.5 CPU seconds count 0.375 s: under a 1 s limit the
    run ends on its own (on one thread it would be killed)."""
    result = await Run(command(SPIN.format(s=1.5)), tmp_path, tmp_path / "run.log", hard_limit_s=1.0,
                       kill_grace_s=0.3, limit_clock=BudgetClock("cpu", 4)).wait()
    assert result.returncode == 0 and not result.timed_out and "done" in result.text


async def test_a_hung_run_ends_at_the_wall_backstop(tmp_path):
    started = time.monotonic()
    result = await Run(command("import time\ntime.sleep(600)\n"), tmp_path, tmp_path / "run.log",
                       hard_limit_s=0.5, kill_grace_s=0.3, limit_clock=CPU).wait()
    took = time.monotonic() - started
    assert result.timed_out
    assert 0.5 * WALL_BACKSTOP <= took < 0.5 * WALL_BACKSTOP + 3


def test_group_cpu_seconds_counts_the_whole_group():
    """Two spinning processes of one group, 1 CPU second each: the group has spent about 2."""
    leader = subprocess.Popen(command(
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {SPIN.format(s=1.0)!r}])\n"
        f"exec({SPIN.format(s=1.0)!r})\nchild.wait()\nimport time\ntime.sleep(30)\n"),
        start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        assert leader.stdout.readline().strip() == "done"
        deadline = time.monotonic() + 10
        while group_cpu_seconds(leader.pid) < 1.9 and time.monotonic() < deadline:
            time.sleep(0.1)  # the child's second lands in the leader's cutime once it is reaped
        assert 1.9 <= group_cpu_seconds(leader.pid) < 3.0
        assert group_cpu_seconds(leader.pid + 10_000_000) == 0.0  # no such group
    finally:
        leader.kill()
        leader.wait()


@pytest.mark.parametrize("kind, threads", [("cpu", 0), ("sundial", 1), ("cpu", 1.5)])
def test_a_clock_that_is_not_one_is_refused(kind, threads):
    with pytest.raises(ValueError, match="budget clock"):
        BudgetClock(kind, threads)
    assert BudgetClock("cpu", 2).describe() == "CPU seconds over 2 thread(s)"


def test_the_probe_reads_the_clock_from_prepare_py(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    assert harness_budget(ws)[:2] == (0.5, BudgetClock("wall", 1))  # the fake names no clock
    ws.prepare_py.write_text(ws.prepare_py.read_text() + "BUDGET_CLOCK = 'cpu'\nBUDGET_THREADS = 3\n")
    assert harness_budget(ws, env={"COCKPIT_TIME_BUDGET": "7"})[:2] == (7.0, BudgetClock("cpu", 3))
    ws.prepare_py.write_text(ws.prepare_py.read_text() + "BUDGET_CLOCK = 'sundial'\n")
    with pytest.raises(WorkspaceError, match="sundial"):
        harness_budget(ws)


async def test_every_run_of_a_session_gets_the_harness_clock(tmp_path, monkeypatch):
    """--budget set, prepare.py on the CPU clock over 2 threads: each run's limit is counted
    on that clock, and the journal's session entry says which."""
    from cockpit.engine import trainer

    clocks: list = []

    class Recording(trainer.Run):
        def __init__(self, *args, **kwargs):
            clocks.append(kwargs["limit_clock"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(trainer, "Run", Recording)
    ws = make_workspace(tmp_path / "ws")
    ws.prepare_py.write_text(ws.prepare_py.read_text() + "BUDGET_CLOCK = 'cpu'\nBUDGET_THREADS = 2\n")
    subprocess.run(["git", "commit", "-qam", "cpu clock"], cwd=ws.path, check=True)
    config = SessionConfig(tag="t1", max_experiments=1, settings=Settings(budget_s=0.2, pipeline=False, noise_runs=0))
    reason, _ = await run_session(ws, ScriptedAgent([]), config)
    assert reason == "max-experiments"
    assert clocks == [BudgetClock("cpu", 2)]
    entries, _ = Journal(ws.path).read()
    assert [e["budget_clock"] for e in entries if e["entry"] == "session"] == ["cpu"]
