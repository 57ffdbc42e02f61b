"""The real cockpit in a real terminal: `cockpit` typed into a tmux pane, driven by keys.

A private tmux server per test (``tmux -L <unique> -f /dev/null``, killed at the
end) runs an interactive shell at a fixed size; the test types ``cockpit
--workspace W --budget 1 --tag tmux`` into it, presses keys as a person would
(``send-keys``), and reads the screen (``capture-pane -p``) and the workspace's
files after each step. Needs the ``tmux`` binary (``apt-get install tmux``).

Every run of the fake train.py takes a ticket at its start and waits until the
test allows that ticket (``Tickets``), so the test decides when each
experiment ends: no race between a key and a run that is already over, and no
fixed sleeps (only short polling intervals).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

import pandas as pd
import pytest

from cockpit.store.rundir import RunDir
from engine_support import FAKES, make_workspace, process_alive, processes_in

# Skipped without tmux on a developer's machine; CI (.ci/run sets COCKPIT_REQUIRE_TMUX=1) fails instead,
# so the real-terminal test can never drop out of CI unnoticed.
REQUIRED = os.environ.get("COCKPIT_REQUIRE_TMUX") == "1"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.serial,  # alone, after the parallel part of `make test`
    pytest.mark.skipif(shutil.which("tmux") is None and not REQUIRED,
                       reason="needs the tmux binary (apt-get install tmux)"),
]


def test_tmux_is_here_when_ci_requires_it():
    assert shutil.which("tmux"), "COCKPIT_REQUIRE_TMUX=1 but no tmux binary on PATH (apt-get install tmux)"

PROMPT = "tmux-test$ "
TIMEOUT_S = 20.0
# number, commit, val_bpb, [Δσ], [holdout], mem GB, status, description (Δσ and holdout may be blank)
ROW = re.compile(r"^\s*(\d+)\s+([0-9a-f]{7})\s+(\S+)\s+(?:\S+\s+){0,2}?(\S+)\s+(keep|discard|crash)\s+(.*?)\s*"
                 r"[▁▂▃▄▅▆▇█▊▋▌▍▎▏]*$")
NEW_PROGRAM = "# program\nTry depth, not learning rates. (edited outside, tmux test)\n"


class Tickets:
    """Run gating: the fake train.py appends its pid to ``started`` and waits while its
    ticket (its line number there) is above the number in ``allowed``."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.started_file = root / "started"
        self.allowed_file = root / "allowed"
        self.started_file.write_text("")
        self.allow(0)

    def train_py(self) -> str:
        """The fake train.py with the ticket wait in front (no UPPER_CASE names: the offline
        agent's moves stay MATRIX_LR, DEPTH and STEPS)."""
        hold = (
            "import os as _os, time as _time\n"
            f"with open({str(self.started_file)!r}, 'a') as _log:\n"
            "    _log.write(f'{_os.getpid()}\\n')\n"
            f"_ticket = len(open({str(self.started_file)!r}).read().split())\n"
            f"while _ticket > int(open({str(self.allowed_file)!r}).read()):\n"
            "    _time.sleep(0.02)\n"
        )
        return hold + (FAKES / "train.py").read_text()

    def allow(self, n: int) -> None:
        """Let runs 1..n (the n first tickets) go on."""
        tmp = self.allowed_file.with_suffix(".tmp")
        tmp.write_text(str(n))
        os.replace(tmp, self.allowed_file)

    def started(self) -> int:
        return len(self.started_file.read_text().split())


class Pane:
    """One tmux pane on a private server: keys in, screen text out."""

    def __init__(self, socket: str) -> None:
        self.socket = socket
        self.target = "cockpit:0.0"
        self.socket_path: Optional[Path] = None

    def start(self, cwd: Path, env: dict[str, str], width: int, height: int) -> None:
        """A server with one window of ``width`` x ``height`` running an interactive shell in ``cwd``."""
        shell_env = [f"{key}={value}" for key, value in env.items()]
        self.tmux("new-session", "-d", "-s", "cockpit", "-x", str(width), "-y", str(height), "-c", str(cwd),
                  "env", *shell_env, "bash", "--norc", "--noprofile", "-i")
        self.socket_path = Path(self.tmux("display-message", "-p", "#{socket_path}").strip())
        self.wait(at_prompt, "the shell prompt")

    def tmux(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        done = subprocess.run(["tmux", "-u", "-L", self.socket, "-f", "/dev/null", *args], env=env,
                              capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, f"tmux {' '.join(args)}: {done.stderr.strip()}"
        return done.stdout

    def keys(self, *keys: str) -> None:
        """Press keys (tmux key names: ``q``, ``F12``, ``Enter``)."""
        self.tmux("send-keys", "-t", self.target, *keys)

    def type_line(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.target, "-l", text)
        self.keys("Enter")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.target)

    def resize(self, width: int, height: int) -> None:
        self.tmux("resize-window", "-t", "cockpit", "-x", str(width), "-y", str(height))

    def wait(self, predicate: Callable[[str], bool], what: str, timeout: float = TIMEOUT_S) -> str:
        """Poll the screen until ``predicate(screen)`` holds; fail with the screen after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                pytest.fail(f"not on screen after {timeout:.0f}s: {what}\n--- screen ---\n{text}")
            time.sleep(0.05)

    def hold(self, predicate: Callable[[str], bool], what: str, seconds: float) -> None:
        """``predicate(screen)`` holds on every poll for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            text = self.screen()
            if not predicate(text):
                pytest.fail(f"no longer on screen: {what}\n--- screen ---\n{text}")
            time.sleep(0.05)

    def wait_for(self, *needles: str, timeout: float = TIMEOUT_S) -> str:
        return self.wait(lambda s: all(n in s for n in needles), " and ".join(map(repr, needles)), timeout)

    def kill(self) -> None:
        """Kill the server, the pane's shell and whatever runs in it (not the engine: it has its own session)."""
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)


def at_prompt(text: str) -> bool:
    """The shell waits for a command: its prompt is the last line on screen."""
    lines = text.rstrip().splitlines()
    return bool(lines) and lines[-1].rstrip() == PROMPT.rstrip()


def until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
    """Poll ``condition`` (files, processes) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not reached after {timeout:.0f}s: {what}")
        time.sleep(0.05)


def complete_lines(path: Path) -> list[str]:
    """The file's whole lines (the engine may be appending one right now)."""
    return path.read_text().split("\n")[:-1] if path.exists() else []


def tsv_rows(ws: Path) -> list[dict]:
    lines = complete_lines(ws / "results.tsv")
    header = lines[0].split("\t") if lines else []
    return [dict(zip(header, line.split("\t"))) for line in lines[1:] if line]


def records(ws: Path, kind: str, **match) -> list[dict]:
    found = [json.loads(line) for line in complete_lines(ws / "records.jsonl") if line]
    return [r for r in found if r.get("kind") == kind and all(r.get(k) == v for k, v in match.items())]


def screen_rows(text: str) -> list[tuple[int, str, str, str]]:
    """(experiment, commit, status, description) of the results rows on screen."""
    rows = []
    for line in text.splitlines():
        match = ROW.match(line.strip("│┃ "))
        if match:
            rows.append((int(match[1]), match[2], match[5], match[6]))
    return rows


def status_bar(text: str) -> str:
    """The status bar's two lines (the top of the screen)."""
    return "\n".join(text.splitlines()[:2])


def same_rows(text: str, rows: list[dict]) -> bool:
    """The screen shows exactly ``rows`` (results.tsv) in order; descriptions may be cut with '…'."""
    shown = screen_rows(text)
    if len(shown) != len(rows):
        return False
    for n, ((exp, commit, status, description), row) in enumerate(zip(shown, rows)):
        if (exp, commit, status) != (n, row["commit"], row["status"]):
            return False
        if not (description == row["description"]
                or (description.endswith("…") and row["description"].startswith(description[:-1]))):
            return False
    return True


def engine_pid(ws: Path) -> int:
    return json.loads((ws / ".cockpit" / "state.json").read_text())["pid"]


@pytest.fixture
def session(tmp_path):
    """(pane, workspace, tickets): a 100x30 tmux pane with a shell in ``tmp_path``, a workspace
    with the ticketed fake train.py. Afterwards the tmux server is killed and any engine and
    training run still alive are stopped (SIGTERM), then killed."""
    tickets = Tickets(tmp_path / "tickets")
    # seed 0: the offline agent proposes STEPS 5 -> 6, DEPTH 4 -> 5, DEPTH 5 -> 6, MATRIX_LR 0.04 -> 0.02, ...
    ws = make_workspace(tmp_path / "ws", train_py=tickets.train_py(), toml='profile = "tiny"\nseed = 0\n').path
    bin_dir = Path(sys.executable).parent  # the cockpit script of this interpreter's environment
    assert shutil.which("cockpit", path=str(bin_dir)), f"no cockpit script in {bin_dir}"
    env = {
        "TERM": "xterm-256color", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PS1": PROMPT, "HISTFILE": "/dev/null",
        "HOME": str(tmp_path), "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "COCKPIT_CACHE_DIR": str(tmp_path / "cache"),
    }
    pane = Pane(f"cockpit-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        pane.start(tmp_path, env, 100, 30)
        yield pane, ws, tickets
    finally:
        pane.kill()
        state = ws / ".cockpit" / "state.json"
        pid = json.loads(state.read_text()).get("pid") if state.exists() else None
        if pid and process_alive(pid):
            os.kill(pid, signal.SIGTERM)  # a clean stop kills the training group too
            deadline = time.monotonic() + 10
            while process_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        for leftover in processes_in(ws):
            os.kill(leftover, signal.SIGKILL)


def test_a_person_at_the_cockpit_in_tmux(session):
    pane, ws, tickets = session

    # -- start: the baseline runs (held at its ticket), the status bar says so
    # the noise floor's baseline re-runs would each take a ticket: off here (tests/test_noise.py has them)
    pane.type_line("cockpit --workspace ws --budget 1 --tag tmux --noise-runs 0")
    screen = pane.wait_for("exp 0", "training", "gate off")
    assert "tmux" in status_bar(screen) and "running" in status_bar(screen)
    pid = engine_pid(ws)
    # "training" is on screen as the run is spawned: its ticket may come a moment later
    until(lambda: tickets.started() == 1, "the baseline run to take its ticket")
    assert process_alive(pid) and tickets.started() == 1

    # -- 2. the approval gate: on before the baseline ends, so the first proposal waits
    pane.keys("g")
    pane.wait(lambda s: "gate on" in status_bar(s), "gate on in the status bar")
    until(lambda: records(ws, "action", action="gate-on"), "a gate-on action record")

    # -- 1. the baseline row, on screen and in results.tsv
    tickets.allow(1)
    screen = pane.wait(lambda s: [(r[0], r[2], r[3]) for r in screen_rows(s)] == [(0, "keep", "baseline")],
                       "the baseline row")
    rows = tsv_rows(ws)
    assert [(r["status"], r["description"]) for r in rows] == [("keep", "baseline")]
    assert screen_rows(screen)[0][1] == rows[0]["commit"]

    # the first proposal waits: nothing trains
    screen = pane.wait(lambda s: "awaiting approval" in status_bar(s) and "proposal: STEPS 5 -> 6" in s,
                       "exp 1 awaiting approval")
    assert "exp 1" in status_bar(screen) and "awaiting-approval" in status_bar(screen)
    assert tickets.started() == 1 and len(tsv_rows(ws)) == 1

    # veto: withdrawn, never trained, recorded
    pane.keys("v")
    until(lambda: records(ws, "vetoed"), "a vetoed record")
    assert records(ws, "action", action="veto")
    assert [r["description"] for r in records(ws, "vetoed")] == ["STEPS 5 -> 6"]
    screen = pane.wait(lambda s: "awaiting approval" in status_bar(s) and "proposal: DEPTH 4 -> 5" in s,
                       "the next proposal awaiting approval")
    assert tickets.started() == 1 and len(tsv_rows(ws)) == 1  # the vetoed one never ran
    assert not any("STEPS" in r["description"] for r in tsv_rows(ws))

    # approve: it trains (and waits at its ticket)
    pane.keys("a")
    until(lambda: tickets.started() == 2, "the approved proposal to start training")
    pane.wait(lambda s: "training" in status_bar(s) and "awaiting" not in status_bar(s), "exp 1 training")
    assert records(ws, "action", action="approve")

    # -- 3. force-keep during the run, with y to confirm; it would have been a discard
    pane.keys("k")
    pane.wait_for("Force-keep the running or just-finished experiment?")
    pane.keys("y")
    until(lambda: records(ws, "action", action="force-keep"), "a force-keep action record")
    pane.wait(lambda s: "Force-keep the running" not in s, "the dialog closed")
    tickets.allow(2)
    until(lambda: len(tsv_rows(ws)) == 2, "the forced row")
    forced = tsv_rows(ws)[1]
    assert (forced["status"], forced["description"], forced["val_bpb"]) == ("keep", "DEPTH 4 -> 5 [forced]", "1.100000")
    screen = pane.wait(lambda s: (1, forced["commit"], "keep", "DEPTH 4 -> 5 [forced]") in screen_rows(s),
                       "the forced keep row")

    # -- 4. pause: gate off approves the next proposal; p while it trains. It was asked while exp 1
    # trained (pipelined, DEPTH 4 -> 5 in flight, so not a depth move) and re-applied onto the forced keep
    pane.wait(lambda s: "awaiting approval" in status_bar(s), "exp 2 awaiting approval")
    pane.keys("g")
    until(lambda: tickets.started() == 3, "exp 2 training once the gate is off")
    pane.wait(lambda s: "gate off" in status_bar(s) and "training" in status_bar(s), "gate off, training")
    pane.keys("p")
    pane.wait(lambda s: "pausing after this experiment" in status_bar(s), "pausing")
    until(lambda: records(ws, "action", action="pause"), "a pause action record")
    tickets.allow(3)  # exp 2 ends; nothing may start while paused (a run would take ticket 4)
    screen = pane.wait(lambda s: "paused · p to resume" in status_bar(s) and len(screen_rows(s)) == 3, "paused")
    assert [r["description"] for r in tsv_rows(ws)][2] == "MATRIX_LR 0.04 -> 0.02"
    queued = [r for r in records(ws, "experiment") if r["experiment"] == 2][0]["queued"]
    assert queued["asked_during"] == 1 and queued["rebased"] is True

    # -- 5. program.md edited outside (as vim saves: a temp file renamed over it) while paused
    pane.keys("6")
    pane.wait_for("Try learning rates.", "saved")
    program = ws / "program.md"
    tmp = ws / ".program.md.swp"
    tmp.write_text(NEW_PROGRAM)
    os.replace(tmp, program)
    edited = time.monotonic()
    screen = pane.wait_for("Try depth, not learning rates.", timeout=3.0)
    assert time.monotonic() - edited < 2.5
    assert "saved" in screen and "conflict" not in screen  # the buffer had no edits: it took the new text
    assert tickets.started() == 3 and len(tsv_rows(ws)) == 3  # still paused
    pane.keys("F1")  # back to results (a letter would be typed into the editor)
    pane.wait(lambda s: len(screen_rows(s)) == 3, "the results pane")
    pane.keys("F12")  # resume
    until(lambda: records(ws, "action", action="resume"), "a resume action record")
    tickets.allow(4)
    until(lambda: len(tsv_rows(ws)) == 4 and tickets.started() == 5, "exp 3 after resuming, exp 4 waiting")
    new_sha = hashlib.sha256(NEW_PROGRAM.encode()).hexdigest()
    shas = [r["program_sha256"] for r in records(ws, "experiment")]
    assert shas[3] == new_sha and new_sha not in shas[:3]
    screen = pane.wait(lambda s: len(screen_rows(s)) == 4 and "running" in status_bar(s), "exp 3, running again")

    # -- 6. q: the cockpit closes, the engine goes on
    pane.keys("q")
    pane.wait(lambda s: "cockpit: detached; session tmux goes on" in s and at_prompt(s), "detached, the shell")
    assert process_alive(pid) and json.loads((ws / ".cockpit" / "state.json").read_text())["status"] == "running"
    assert RunDir(ws).engine_running()  # the engine lock is held
    tickets.allow(6)  # two more rows with no cockpit attached, then the next run waits
    until(lambda: len(tsv_rows(ws)) == 6 and tickets.started() == 7, "two rows while detached")
    assert process_alive(pid)

    pane.type_line("clear; cockpit --workspace ws")
    rows = tsv_rows(ws)
    screen = pane.wait(lambda s: same_rows(s, rows) and "exp 6" in status_bar(s) and "training" in status_bar(s),
                       f"the full table on reattach: {[(r['commit'], r['status']) for r in rows]}")
    assert engine_pid(ws) == pid and tsv_rows(ws) == rows
    # the replayed history is history: no notice of it (e.g. "exp 1 awaits approval") shows up
    pane.hold(lambda s: same_rows(s, rows) and "awaits approval" not in s, "the table, no stale notice", 1.0)

    # -- the same cockpit at 80x24: status bar, pane bar, the whole table and the footer fit
    def fits_80x24(text: str) -> bool:
        lines = text.splitlines()
        return (len(lines) == 24 and max(map(len, lines)) <= 80
                and re.match(r"^ cockpit · ws tmux │ exp 6 │ training .* best 1\.000000 \(Δ -0\.100000\)$", lines[0])
                and lines[1].startswith(" ● running │ gate off │ ")
                and all(label in lines[2] for label in ("Results", "Curves", "Staircase", "Diff", "Agent", "Program"))
                and same_rows(text, rows)
                and all(key in lines[-1] for key in ("p Pause", "v Veto", "a Approve", "x Stop", "q Detach"))
                and "awaits approval" not in text) is True
    pane.resize(80, 24)
    pane.wait(fits_80x24, "the cockpit at 80x24")

    # -- 7. x, y: the session stops, the cockpit closes, the engine exits
    pane.keys("x")
    pane.wait_for("Stop the session now?")
    pane.keys("y")
    pane.wait(at_prompt, "the cockpit closed, the shell")
    until(lambda: not process_alive(pid), "the engine to exit")
    pane.type_line("echo exit=$?")
    pane.wait_for("exit=0")
    assert processes_in(ws) == []
    state = json.loads((ws / ".cockpit" / "state.json").read_text())
    assert (state["status"], state["reason"]) == ("ended", "stopped")

    table = pd.read_csv(ws / "results.tsv", sep="\t", dtype={"commit": str})
    assert list(table.columns) == ["commit", "val_bpb", "memory_gb", "status", "description"]
    assert len(table) == 7 and table["status"].iloc[-1] == "crash" and table["description"].iloc[-1].endswith("[stopped]")
    assert table["description"].str.contains(r"\[forced\]").sum() == 1
    kept = [c for c, s in zip(table["commit"], table["status"]) if s == "keep"]
    git = ["git", "-C", str(ws)]
    branch = subprocess.run([*git, "rev-list", "--reverse", "autoresearch/tmux"], capture_output=True, text=True,
                            check=True).stdout.split()
    full = [subprocess.run([*git, "rev-parse", c], capture_output=True, text=True, check=True).stdout.strip()
            for c in kept]
    assert branch == full  # baseline, the forced keep, the natural keep: nothing else
