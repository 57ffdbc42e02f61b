"""Cold start of the cockpit: from exec of ``cockpit`` to its first frame in a terminal.

Each run execs the real console script (``.venv/bin/cockpit --workspace W --tag T``)
in a fresh pseudo-terminal of ``--size`` (default 100x30, as the tmux test),
with no engine running on the workspace: ``cockpit`` starts the engine daemon
(``cockpit serve``) in the background, waits for its socket, then opens the
app. The first frame is the first moment the terminal output, escape
sequences stripped, holds the app's title (``cockpit · <workspace>``), its
pane bar and its footer. Also timed: when the daemon's state file says
"running" (its socket is open; its session's prepare and baseline run after
that, in the background). Then the session is stopped as a person does (``x``,
``y``), and the script checks that nothing it started is left running (the
cockpit, the daemon, the training it started), killing leftovers.

One more run with ``PYTHONPROFILEIMPORTTIME=1`` gives the import costs of the
two processes on the path to the first frame (the cockpit's, read from its
terminal, and the daemon's, from logs/engine.log) and says whether torch or
litellm was imported by either (neither should be).

    .venv/bin/python bench/cold_start.py [--workspace DIR] [--runs 3] [--size 100x30]

Without ``--workspace`` a workspace is made with ``cockpit init DIR --profile
tiny`` in a temporary directory (its data comes from the cache when it is
there). The last line is ``cold start: X s to first frame (runs: ...)`` (X:
the median). Target (issue 6): <= 1 s. Exit status 1 when a run saw no
frame, torch or litellm was imported, or a process was left behind.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COCKPIT = BIN / "cockpit"
ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|.)")
FRAME_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0
FORBIDDEN = ("torch", "litellm")  # never to be imported on the way to the first frame


@dataclass
class Run:
    """One cold start: seconds from exec to the daemon's socket and to the first frame."""

    first_frame_s: Optional[float] = None
    daemon_ready_s: Optional[float] = None
    stop_s: Optional[float] = None
    exit_status: Optional[int] = None
    leftovers: list[str] = field(default_factory=list)
    screen: str = ""
    output: bytes = b""  # all the terminal received (stderr included)


def spawn_in_pty(argv: list[str], cwd: Path, env: dict, size: tuple[int, int]) -> tuple[subprocess.Popen, int]:
    """``argv`` in a new session whose controlling terminal is a new pty of ``size`` (columns,
    rows), stdin, stdout and stderr (Textual draws on stderr). Returns the process and the
    pty's master fd."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))

    def controlling_tty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                            preexec_fn=controlling_tty, close_fds=True)
    os.close(slave)
    return proc, master


def read_available(fd: int, timeout: float) -> bytes:
    """What the pty has within ``timeout`` seconds (b"" if nothing; the child may have closed it)."""
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return b""
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the child side is closed
        return b""


def plain(output: bytes) -> str:
    """Terminal output without escape sequences."""
    return ANSI.sub("", output.decode("utf-8", errors="replace"))


def state_of(workspace: Path) -> dict:
    """The workspace's .cockpit/state.json ({} when missing or unreadable)."""
    try:
        data = json.loads((workspace / ".cockpit" / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def processes_in(workspace: Path) -> list[str]:
    """Live processes ("pid command line") whose command line or working directory is in ``workspace``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            cwd = os.readlink(entry / "cwd")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.split(") ", 1)[-1].startswith("Z"):
            continue  # a zombie: already dead
        if str(workspace) in cmdline or cwd == str(workspace) or cwd.startswith(str(workspace) + "/"):
            found.append(f"{entry.name} {cmdline}")
    return found


def cold_start(workspace: Path, size: tuple[int, int], env: dict) -> Run:
    """One run: exec cockpit, time the first frame, stop the session, check for leftovers."""
    run = Run()
    tag = f"cold-{uuid.uuid4().hex[:6]}"
    title = f"cockpit · {workspace.name}"
    started = time.monotonic()
    proc, master = spawn_in_pty([str(COCKPIT), "--workspace", str(workspace), "--tag", tag], workspace, env, size)
    output = b""
    try:
        deadline = started + FRAME_TIMEOUT_S
        while run.first_frame_s is None and time.monotonic() < deadline and proc.poll() is None:
            chunk = read_available(master, 0.002)
            if chunk:
                output += chunk
                text = plain(output)
                if title in text and "Results" in text and "Pause" in text:
                    run.first_frame_s = time.monotonic() - started
            if run.daemon_ready_s is None and state_of(workspace).get("tag") == tag \
                    and state_of(workspace).get("status") == "running":
                run.daemon_ready_s = time.monotonic() - started
        run.screen = plain(output)[-400:]
        if run.daemon_ready_s is None and state_of(workspace).get("tag") == tag:
            run.daemon_ready_s = float("nan")  # started; its "running" was not seen in time
        stop_started = time.monotonic()
        os.write(master, b"x")
        time.sleep(0.3)
        os.write(master, b"y")
        deadline = stop_started + STOP_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            output += read_available(master, 0.05)  # keep the terminal drained
        run.stop_s = time.monotonic() - stop_started
    finally:
        if proc.poll() is None:
            proc.kill()
        run.exit_status = proc.wait()
        while chunk := read_available(master, 0):
            output += chunk
        os.close(master)
        run.output = output
    pid = state_of(workspace).get("pid") if state_of(workspace).get("tag") == tag else None
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while pid and time.monotonic() < deadline and Path(f"/proc/{pid}").exists() \
            and not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[-1].startswith("Z"):
        time.sleep(0.05)
    run.leftovers = processes_in(workspace)
    for line in run.leftovers:  # leave nothing behind, but say so
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except OSError:
            pass
    return run


def import_costs(log: str) -> list[tuple[int, int, str]]:
    """(self us, cumulative us, module indented by its depth) of each ``-X importtime`` line in
    ``log`` (a line may sit after other output: terminal text, escape sequences stripped)."""
    rows = []
    for line in ANSI.sub("", log).replace("\r", "\n").splitlines():
        at = line.find("import time:")
        fields = line[at + len("import time:"):].split("|", 2) if at >= 0 else []
        if len(fields) == 3 and fields[0].strip().isdigit():
            rows.append((int(fields[0]), int(fields[1]), fields[2].rstrip()[1:]))  # one space, then the depth
    return rows


def report_imports(label: str, rows: list[tuple[int, int, str]], top: int) -> list[str]:
    """Lines on the import costs of one process; the modules of FORBIDDEN it imported."""
    total = sum(own for own, _, _ in rows) / 1e6
    print(f"{label}: {len(rows)} modules imported, {total:.2f} s of import time (-X importtime)")
    print(f"  top {top} by cumulative time (top-level imports):")
    for own, cumulative, name in sorted((r for r in rows if not r[2].startswith(" ")), key=lambda r: -r[1])[:top]:
        print(f"    {cumulative / 1e3:8.1f} ms  {name.strip()}")
    print(f"  top {top} by own time:")
    for own, cumulative, name in sorted(rows, key=lambda r: -r[0])[:top]:
        print(f"    {own / 1e3:8.1f} ms  {name.strip()}")
    return [name.strip() for _, _, name in rows if name.strip().split(".")[0] in FORBIDDEN]


def make_workspace(parent: Path) -> Path:
    """A fresh workspace of the tiny profile (``cockpit init``)."""
    workspace = parent / "ws"
    done = subprocess.run([str(COCKPIT), "init", str(workspace), "--profile", "tiny"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cockpit init failed: {done.stderr.strip() or done.stdout.strip()}")
    return workspace


def main() -> int:
    """Time the cold starts, then the import costs; print the summary line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, help="a workspace with no engine running (default: a fresh tiny one)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", default="100x30", help="terminal columns x rows (default 100x30)")
    parser.add_argument("--top", type=int, default=12, help="modules listed per import table")
    args = parser.parse_args()
    columns, rows = (int(n) for n in args.size.lower().split("x"))
    env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor", "PATH": f"{BIN}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT)}  # this checkout's cockpit, the daemon's too
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="cockpit-cold-") as tmp:
        workspace = (args.workspace or make_workspace(Path(tmp))).resolve()
        if state_of(workspace).get("status") in ("starting", "running"):
            raise SystemExit(f"an engine may be running on {workspace}: stop it first")
        runs = []
        for number in range(1, args.runs + 1):
            run = cold_start(workspace, (columns, rows), env)
            runs.append(run)
            ready = "not seen" if run.daemon_ready_s is None else f"{run.daemon_ready_s:.2f} s"
            frame = "none" if run.first_frame_s is None else f"{run.first_frame_s:.2f} s"
            print(f"run {number}: first frame {frame} (daemon's socket open at {ready}); stop (x, y) took "
                  f"{run.stop_s:.1f} s, exit status {run.exit_status}; left running: {len(run.leftovers)}", flush=True)
            if run.first_frame_s is None:
                print(f"  no frame; the terminal showed: {run.screen!r}")
            for line in run.leftovers:
                print(f"  left running (killed): {line}")
            failures += run.first_frame_s is None or bool(run.leftovers)

        engine_log = workspace / "logs" / "engine.log"
        log_start = engine_log.stat().st_size if engine_log.exists() else 0
        profiled = cold_start(workspace, (columns, rows), {**env, "PYTHONPROFILEIMPORTTIME": "1"})
        failures += profiled.first_frame_s is None or bool(profiled.leftovers)
        frame = "none" if profiled.first_frame_s is None else f"{profiled.first_frame_s:.2f} s"
        print(f"import-time run (PYTHONPROFILEIMPORTTIME=1, slower): first frame {frame}; "
              f"left running: {len(profiled.leftovers)}")
        daemon_log = engine_log.read_bytes()[log_start:].decode(errors="replace") if engine_log.exists() else ""
        forbidden = report_imports("cockpit (the UI process)", import_costs(profiled.output.decode(errors="replace")),
                                   args.top)
        forbidden_daemon = report_imports("cockpit serve (the engine daemon, up to its socket and beyond)",
                                          import_costs(daemon_log), args.top)
        for label, names in (("cockpit", forbidden), ("cockpit serve", forbidden_daemon)):
            verdict = f"YES: {', '.join(sorted(set(names)))}" if names else "no"
            print(f"torch or litellm imported by {label}: {verdict}")
        failures += bool(forbidden) + bool(forbidden_daemon)

    frames = [run.first_frame_s for run in runs if run.first_frame_s is not None]
    median = statistics.median(frames) if frames else float("nan")
    print(f"cold start: {median:.2f} s to first frame (runs: {', '.join(f'{f:.2f}' for f in frames)})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
