"""Resume, don't restart: kill -9 a headless engine mid-run, then type the very same command again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from engine_support import cockpit_argv, make_workspace, marked

from cockpit.store.journal import Journal
from cockpit.store.records import read_records
from cockpit.store.results import read_rows
from cockpit.store.repo import GitRepo

pytestmark = pytest.mark.slow


def command(ws: Path, marker: str, *extra: str) -> list[str]:
    return cockpit_argv() + ["--workspace", str(ws), "--headless", "--budget", "0.2", "--max-experiments", "6",
                             "--run-command", f"{sys.executable} -u train.py {marker}", *extra]


def kill_during_run(argv: list[str], slow: Path, moment: int) -> str:
    """Run ``argv``; SIGKILL it while experiment ``moment`` trains. Returns what it printed."""
    env = {**os.environ, "FAKE_SLOW_FILE": str(slow)}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    watchdog = threading.Timer(90, proc.kill)
    watchdog.start()
    lines = []
    try:
        for text in proc.stdout:
            lines.append(text)
            if text.startswith(f"[exp {moment}] proposal:"):
                slow.touch()
            if text.startswith(f"[exp {moment}] step"):
                os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, "".join(lines)
    finally:
        watchdog.cancel()
        slow.unlink(missing_ok=True)
    return "".join(lines)


def branches(ws: Path) -> list[str]:
    out = subprocess.run(["git", "branch", "--list", "autoresearch/*"], cwd=ws, capture_output=True, text=True).stdout
    return [line.strip(" *") for line in out.splitlines()]


def test_the_same_command_after_kill_9_continues_the_session(tmp_path):
    ws = make_workspace(tmp_path / "ws").path
    marker = f"resume-{uuid.uuid4().hex[:8]}"
    first = kill_during_run(command(ws, marker), tmp_path / "slow", moment=3)
    assert "noise floor: sigma" in first
    rows_before = read_rows(ws / "results.tsv")
    assert len(rows_before) == 3

    again = subprocess.run(command(ws, marker), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    out = again.stdout
    assert "resumed session" in out and "no baseline re-run" in out
    assert "[exp 0] step" not in out and "noise floor: baseline re-run" not in out  # nothing trained twice
    assert "interrupted" in out  # start-up settled the killed run first

    rows = read_rows(ws / "results.tsv")
    assert len(rows) == 6  # --max-experiments counts the whole session, the first engine's rows included
    assert rows[:3] == rows_before
    assert rows[3].description.endswith("[interrupted]") and rows[3].status == "crash"
    assert len({r.commit for r in rows}) == 6  # one row per experiment, no duplicate commit
    assert sum(r.description == "baseline" for r in rows) == 1
    assert len(branches(ws)) == 1  # the same session, on the same branch

    tag = branches(ws)[0].removeprefix("autoresearch/")
    records = read_records(ws / "records.jsonl")
    assert len([r for r in records if r.get("kind") == "noise-floor"]) == 1
    experiments = [r for r in records if r.get("kind") == "experiment"]
    assert [r["experiment"] for r in experiments] == list(range(6))
    assert {r["tag"] for r in experiments} == {tag}
    sessions = [e for e in Journal(ws).read()[0] if e["entry"] == "session"]
    assert [s["tag"] for s in sessions] == [tag, tag] and sessions[1]["resumed"] is True
    kept = [r for r in rows if r.status == "keep"]
    assert GitRepo(ws).head_commit()[:7] == kept[-1].commit  # the branch stands at its best keep
    assert marked(marker) == []  # no orphan process


def test_new_session_starts_fresh_from_the_best(tmp_path):
    ws = make_workspace(tmp_path / "ws").path
    marker = f"fresh-{uuid.uuid4().hex[:8]}"
    kill_during_run(command(ws, marker), tmp_path / "slow", moment=2)
    fresh = subprocess.run(command(ws, marker, "--new-session", "--max-experiments", "1"),
                           capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stdout[-3000:] + fresh.stderr[-2000:]
    assert "resumed session" not in fresh.stdout
    assert len(branches(ws)) == 2
    assert read_rows(ws / "results.tsv")[-1].description == "baseline"
