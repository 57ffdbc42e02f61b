"""The engine daemon on a real workspace (fake train.py): start, attach, detach, reattach, stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cockpit.serve.attach import AttachedEngine, DaemonError, attach_or_start, running_engine, start_daemon, wait_ready
from cockpit.cli import build_parser, main
from cockpit.cli.session import serve_argv, typed_session_flags
from cockpit.commands import Pause, Resume, Stop
from cockpit.events import PhaseChanged, RowLogged, SessionStarted, StepLogged
from cockpit.store.rundir import EngineBusy, RunDir
from engine_support import FAKES, make_workspace, process_alive, processes_in

SLOW_TRAIN = "import time as _t; _t.sleep(0.3)\n" + (FAKES / "train.py").read_text()  # ~0.5 s a run


@pytest.fixture
def spawned():
    """Popen objects of daemons a test starts; whatever still runs at the end is stopped, then killed."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # a clean stop kills the training group too
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


class Client:
    """An AttachedEngine running in a task, collecting its events."""

    def __init__(self, state: dict) -> None:
        self.events: list = []
        self.engine = AttachedEngine(state, self.events.append)
        self.task = asyncio.ensure_future(self.engine.run())

    def rows(self) -> list[tuple[int, str, str]]:
        return [(e.experiment, e.commit, e.status) for e in self.events if isinstance(e, RowLogged)]

    async def until(self, condition, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert not self.task.done(), f"the connection ended: {self.events[-3:]}"
            assert time.monotonic() < deadline, f"not reached in {timeout}s: {self.events[-3:]}"
            await asyncio.sleep(0.02)

    async def detach(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def _start(rundir: RunDir, spawned: list, argv: list[str]):
    def start():
        spawned.append(start_daemon(rundir, argv))
        return spawned[-1]
    return start


async def test_start_attach_detach_reattach_and_stop(tmp_path, spawned, capsys):
    ws = make_workspace(tmp_path / "ws", train_py=SLOW_TRAIN)
    rundir = RunDir(ws.path)
    args = build_parser().parse_args(["--workspace", str(ws.path), "--budget", "1"])
    first = attach_or_start(rundir, _start(rundir, spawned, serve_argv(args, ws, "d1")), typed_session_flags(args))
    assert first.started and first.state["status"] == "running" and first.notes == []
    pid = first.state["pid"]
    assert pid == spawned[0].pid and Path(first.state["socket"]).exists()
    again = build_parser().parse_args(["--tag", "other", "--max-experiments", "2"])
    second = attach_or_start(rundir, lambda: pytest.fail("a second engine was started"), typed_session_flags(again))
    assert not second.started and second.state["pid"] == pid
    assert second.notes == [f"attaching to the running session d1 (engine pid {pid}); --max-experiments, --tag ignored"]
    assert main(["--workspace", str(ws.path), "--headless", "--max-experiments", "1"]) == 1  # one engine per workspace
    assert capsys.readouterr().err.strip() == f"cockpit: an engine (pid {pid}, session d1) already runs on {ws.path}"

    one = Client(first.state)
    await one.until(lambda: len(one.rows()) >= 2)
    one.engine.send(Pause())
    await one.until(lambda: any(isinstance(e, PhaseChanged) and e.phase == "paused" for e in one.events))
    await one.detach()  # the UI went away, and so did its terminal:
    os.kill(pid, signal.SIGHUP)
    await asyncio.sleep(0.3)
    assert process_alive(pid) and spawned[0].poll() is None

    two = Client(rundir.read_state())
    await two.until(lambda: len(two.rows()) >= len(one.rows()))
    await asyncio.sleep(0.2)
    assert two.rows() == one.rows()  # paused: the full history, no more
    assert two.events[0].started_at == one.events[0].started_at is not None
    assert isinstance(two.events[0], SessionStarted)
    shown = {e.experiment for e in two.events if isinstance(e, StepLogged)}
    kept = [n for n, _, status in two.rows() if status == "keep"]
    assert shown <= {kept[-1], two.rows()[-1][0]}  # steps of the latest and the last kept run only
    two.engine.send(Resume())
    await two.until(lambda: len(two.rows()) > len(one.rows()))
    two.engine.send(Stop())
    assert await asyncio.wait_for(two.task, 30) == "stopped"

    assert spawned[0].wait(timeout=30) == 0
    assert not process_alive(pid) and processes_in(ws.path) == []
    assert not Path(first.state["socket"]).exists()
    state = rundir.read_state()
    assert (state["status"], state["reason"]) == ("ended", "stopped")
    replayed = Client(state)  # an ended session: replayed from its log file
    assert await asyncio.wait_for(replayed.task, 10) == "stopped"
    assert replayed.rows() == two.rows() and not replayed.engine.gone
    assert ".cockpit/" in (ws.path / ".gitignore").read_text()
    assert "session d1 ended: stopped" in (ws.path / "logs" / "engine.log").read_text()


def test_a_daemon_that_exits_at_once_is_an_error_naming_its_log(tmp_path, spawned):
    rundir = RunDir(tmp_path)
    code = "import sys; print('cockpit: branch autoresearch/x already exists'); sys.exit(1)"
    proc = start_daemon(rundir, [sys.executable, "-c", code])
    spawned.append(proc)
    with pytest.raises(DaemonError) as error:
        wait_ready(rundir, proc, timeout_s=20)
    assert "exited at once (status 1): cockpit: branch autoresearch/x already exists" in str(error.value)
    assert str(rundir.engine_log) in str(error.value)


def test_a_stale_state_is_cleaned_up_with_a_note(tmp_path):
    rundir = RunDir(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    socket = tmp_path / ".cockpit" / "engine.sock"
    rundir.write_state({"pid": dead.pid, "mode": "daemon", "tag": "old", "socket": str(socket), "status": "running"})
    socket.write_text("")
    note = rundir.clean_stale()
    assert note.startswith(f"the engine of session old (pid {dead.pid}) died without ending it; cleaned up")
    assert not socket.exists() and rundir.read_state()["status"] == "ended"
    assert rundir.clean_stale() is None and running_engine(rundir, 1) is None


def test_a_headless_session_holding_the_workspace_is_refused(tmp_path):
    rundir = RunDir(tmp_path)
    lock = rundir.lock_engine()
    try:
        rundir.write_state({"pid": os.getpid(), "mode": "headless", "tag": "h", "status": "running"})
        with pytest.raises(EngineBusy, match="a headless session .* session h"):
            running_engine(rundir, 1)
        with pytest.raises(EngineBusy):
            rundir.lock_engine()
    finally:
        lock.release()
    assert not rundir.engine_running()


def test_long_workspace_paths_get_a_short_socket(tmp_path):
    deep = tmp_path / ("d" * 120)
    path = RunDir(deep).socket_path()
    assert len(os.fsencode(path)) <= 100 and path.suffix == ".sock"
    assert RunDir(deep).socket_path() == path  # stable: a client finds the daemon's socket again
    assert RunDir(tmp_path / ("e" * 120)).socket_path() != path  # two long workspaces never share one


CLIENT = """
import asyncio, json, sys
from cockpit.serve.attach import AttachedEngine
state = json.loads(sys.argv[1])
async def main():
    await AttachedEngine(state, lambda event: print(type(event).__name__, flush=True)).run()
asyncio.run(main())
"""


async def test_a_cockpit_killed_with_sigkill_leaves_the_loop_running(tmp_path, spawned):
    """kill -9 of an attached cockpit mid-run: the engine goes on, the table stays intact."""
    ws = make_workspace(tmp_path / "ws", train_py=SLOW_TRAIN)
    rundir = RunDir(ws.path)
    args = build_parser().parse_args(["--workspace", str(ws.path), "--budget", "1"])
    first = attach_or_start(rundir, _start(rundir, spawned, serve_argv(args, ws, "k9")), typed_session_flags(args))
    ui = subprocess.Popen([sys.executable, "-c", CLIENT, json.dumps(first.state)], stdout=subprocess.PIPE, text=True)
    seen = []
    for line in ui.stdout:  # wait until the attached process has seen a row and a run in progress
        seen.append(line.strip())
        if "RowLogged" in seen and line.strip() == "StepLogged":
            break
    ui.kill()
    assert ui.wait(timeout=10) == -signal.SIGKILL
    before = len([line for line in (ws.path / "results.tsv").read_text().splitlines()[1:]])

    watcher = Client(rundir.read_state())
    await watcher.until(lambda: len(watcher.rows()) >= before + 2)  # the loop went on without its cockpit
    assert process_alive(first.state["pid"]) and spawned[0].poll() is None
    rows = [tuple(line.split("\t")[:4]) for line in (ws.path / "results.tsv").read_text().splitlines()[1:]]
    assert [commit for _, commit, _ in watcher.rows()][: len(rows)] == [r[0] for r in rows][: len(watcher.rows())]
    watcher.engine.send(Stop())
    assert await asyncio.wait_for(watcher.task, 30) == "stopped"
    assert spawned[0].wait(timeout=30) == 0 and processes_in(ws.path) == []
