"""`cockpit status`, `cockpit stop` and default tags that never collide, as a script uses them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from engine_support import FAKES, make_workspace, processes_in

from cockpit.cli.session import free_tag
from cockpit.store.journal import Journal
from cockpit.store.results import read_rows
from cockpit.store.repo import GitRepo


def cockpit(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "cockpit"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout)


def test_a_default_tag_that_is_taken_gets_a_suffix(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    assert free_tag(ws.path, "dec04-2041") == "dec04-2041"
    repo = GitRepo(ws.path)
    repo.create_branch("autoresearch/dec04-2041")
    assert free_tag(ws.path, "dec04-2041") == "dec04-2041-2"
    Journal(ws.path).append("session", tag="dec04-2041-2", branch="autoresearch/dec04-2041-2")
    assert free_tag(ws.path, "dec04-2041") == "dec04-2041-3"


def test_the_same_command_twice_in_one_minute_starts_two_sessions(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    argv = ("--workspace", str(ws.path), "--headless", "--max-experiments", "1", "--budget", "0.2",
            "--noise-runs", "0")
    first, second = cockpit(*argv), cockpit(*argv)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr  # was: "branch autoresearch/<tag> already exists"
    branches = [line.strip(" *") for line in subprocess.run(
        ["git", "branch", "--list", "autoresearch/*"], cwd=ws.path, capture_output=True, text=True).stdout.splitlines()]
    assert len(set(branches)) == 2
    first_tag = min(branches, key=len).removeprefix("autoresearch/")
    if any(b.endswith("-2") for b in branches):  # both in the same minute
        assert sorted(branches) == [f"autoresearch/{first_tag}", f"autoresearch/{first_tag}-2"]


def test_status_then_stop_a_running_headless_session(tmp_path):
    source = (FAKES / "train.py").read_text().replace('MODE = "ok"', 'MODE = "hang"')
    ws = make_workspace(tmp_path / "ws", train_py=source)
    assert cockpit("status", "--workspace", str(ws.path)).returncode == 1  # nothing runs yet
    exe = Path(sys.executable).parent / "cockpit"
    proc = subprocess.Popen([str(exe), "--workspace", str(ws.path), "--headless", "--budget", "30",
                             "--tag", "night"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "training" not in cockpit("status", "--workspace", str(ws.path)).stdout:
            time.sleep(0.2)
        shown = cockpit("status", "--workspace", str(ws.path))
        assert shown.returncode == 0, shown.stdout
        assert f"pid {proc.pid} (headless)" in shown.stdout
        assert "tag:         night (branch autoresearch/night)" in shown.stdout
        assert "phase:       training" in shown.stdout and "experiment:  0" in shown.stdout

        stopped = cockpit("stop", "--workspace", str(ws.path))
        assert stopped.returncode == 0, stopped.stderr
        assert proc.poll() is not None  # stop returned only once the engine was gone
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.wait() == 0
    assert [(r.status, r.description) for r in read_rows(ws.results_tsv)] == [("crash", "baseline [stopped]")]
    assert processes_in(ws.path) == []
    after = cockpit("status", "--workspace", str(ws.path))
    assert after.returncode == 1
    assert "running: no (last session ended: stopped)" in after.stdout
    assert "rows:        1 in results.tsv" in after.stdout and "baseline [stopped]" in after.stdout
    assert cockpit("stop", "--workspace", str(ws.path)).returncode == 1  # nothing left to stop
