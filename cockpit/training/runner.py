"""Run one training (or prepare) subprocess: stream, log, time, hard-kill.

The child runs in its own session (``start_new_session=True``) so the whole
process group (torch.compile workers included) can be killed. stdout and stderr
are merged and read in chunks; text is split on ``\r`` and ``\n`` (progress lines
end in ``\r``), every byte goes to the log file, and each line is reported as a
``StepLogged`` (progress line) or ``LogLine`` event. At the hard limit the group
gets SIGTERM, then SIGKILL after ``kill_grace_s``; ``kill()`` does the same for
Stop. After the child exits, anything left in its group is killed too, and so
is any descendant that left the group (``os.setsid()``): every run gets a unique
``COCKPIT_RUN_ID`` in its environment, which all its descendants inherit, and
``sweep`` SIGKILLs the live processes outside the group that carry it (read
from /proc/*/environ; Linux only, a no-op elsewhere). A descendant that also
cleared its environment is found by the process tree instead: the engine is
the child subreaper of its runs (cockpit.training.orphans), so it is re-parented to the
engine and ``sweep_orphans`` kills and reaps it. Both are counted in
``RunResult.stray_processes``.

Secrets never reach the log, the events or the result: the text is redacted
(cockpit.rules.redact) a whole line at a time before it is written or reported. A
log that cannot be written (disk full) does not stop the run: the output is
still read and kept in memory, and ``RunResult.log_error`` says why.
"""

from __future__ import annotations

import asyncio
import codecs
import math
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Callable, Optional, Sequence

from cockpit.events import Emit, LogLine, StepLogged
from cockpit.rules.redact import redact, secret_values
from cockpit.rules.run_env import run_environment
from cockpit.rules.summary import flush_tail, parse_step_line, split_lines
from cockpit.rules.budget_clock import WALL, BudgetClock
from cockpit.training.budget_limit import CHECK_S, LimitWatch
from cockpit.training.orphans import become_subreaper, foreign_children, start_ticks, sweep_orphans, ticks_now
from cockpit.training.run_result import RunResult, RunnerError
from cockpit.training.sweep import RUN_ID_ENV, sweep


CHUNK_BYTES = 65536
MAX_HELD = 1 << 20  # characters of an unfinished line held back for redaction before it is written anyway
DRAIN_S = 2.0  # seconds to finish reading the pipe after the child exited
POLL_S = 0.05  # seconds between checks of the child's exit status
LIVE_RUNS: set[int] = set()  # pids of this process's runs still going (spared by sweep_orphans)


class Run:
    """One subprocess run. Create, then ``await run.wait()``; ``kill()`` stops it.

    ``command`` is the argv list, run in ``cwd`` with ``run_environment(env)``
    (cockpit.rules.run_env: an allow-list of ``os.environ``, no secrets, plus ``env``);
    output goes to ``log_path`` (created with its folder). ``hard_limit_s`` None
    means no limit; a limit that is not a positive, finite number of seconds
    raises ValueError (``inf`` would lift it, ``nan`` would kill every run at once). Events carry ``experiment``; ``emit`` None reports nothing.
    ``on_start(pid)`` is called once the process (and its process group) exists.
    ``limit_clock`` is the clock the hard limit is counted on, the time budget's
    (cockpit.training.budget_limit: wall seconds, or the group's CPU seconds per thread
    with a wall backstop).
    """

    def __init__(
        self,
        command: Sequence[str],
        cwd: str | os.PathLike,
        log_path: str | os.PathLike,
        *,
        env: Optional[dict] = None,
        hard_limit_s: Optional[float] = None,
        kill_grace_s: float = 5.0,
        experiment: int = 0,
        emit: Optional[Emit] = None,
        on_start: Optional[Callable[[int], None]] = None,
        limit_clock: BudgetClock = WALL,
    ) -> None:
        self.command = list(command)
        self.cwd = Path(cwd)
        self.log_path = Path(log_path)
        self.run_id = uuid.uuid4().hex
        # the allow-list (cockpit.rules.run_env): no API key or token reaches the agent's code
        self.env = run_environment({**(env or {}), RUN_ID_ENV: self.run_id})
        if hard_limit_s is not None and not (math.isfinite(hard_limit_s) and hard_limit_s > 0):
            raise ValueError(f"hard limit must be a positive, finite number of seconds, not {hard_limit_s!r}")
        self.hard_limit_s = hard_limit_s
        self.limit_clock = limit_clock
        self.kill_grace_s = kill_grace_s
        self.experiment = experiment
        self.emit = emit
        self.on_start = on_start
        self._secrets = secret_values({**os.environ, **self.env})  # the engine's keys, redacted from the log
        self._log_error = ""
        self._proc: Optional[asyncio.subprocess.Process] = None
        self._stopped = False
        self._killer: Optional[asyncio.Task] = None
        self._pieces: list[str] = []
        self._first_step: Optional[float] = None
        self._last_step: Optional[float] = None
        self._counted_start: Optional[float] = None
        self._uncounted: Optional[tuple[float, float]] = None  # (time, dt s) of the newest 0% line
        self._strays: set[int] = set()
        self._since: Optional[int] = None  # the child's start time, clock ticks since boot
        self._older: set[int] = set()  # children outside our session before the spawn: not the run's

    def kill(self) -> None:
        """Stop the run now: SIGTERM to its process group, SIGKILL after the grace.

        Safe to call before the process started or after it ended.
        """
        self._stopped = True
        if self._proc is not None and self._proc.returncode is None and self._killer is None:
            self._killer = asyncio.ensure_future(self._terminate_group())

    def output(self, since: int = 0) -> list[str]:
        """The redacted output pieces read so far, after the first ``since`` (for a
        caller that streams them elsewhere: cockpit.training.ray_slots)."""
        return self._pieces[since:]

    async def wait(self) -> RunResult:
        """Start the process, stream it to the end, and return its RunResult.

        Raises RunnerError when the command cannot be started.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        become_subreaper()  # before the spawn: an orphan of the run comes back to us (cockpit.training.orphans)
        before, self._older = ticks_now(), foreign_children()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command, cwd=self.cwd, env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )
        except OSError as exc:
            raise RunnerError(f"cannot start {' '.join(self.command)} in {self.cwd}: {exc}") from None
        self._since = start_ticks(self._proc.pid) or before  # None if it is already gone
        LIVE_RUNS.add(self._proc.pid)
        try:
            return await self._follow(started)
        finally:
            LIVE_RUNS.discard(self._proc.pid)

    async def _follow(self, started: float) -> RunResult:
        """Stream the started process to its end (``wait``'s body)."""
        assert self._proc is not None
        if self.on_start is not None:
            self.on_start(self._proc.pid)
        if self._stopped:
            self.kill()
        timed_out = False
        with open(self.log_path, "wb", buffering=0) as log:  # unbuffered: a failed write leaves nothing to flush
            pump = asyncio.ensure_future(self._pump(log))
            exited = asyncio.ensure_future(self._wait_exit())
            if not await self._within_limit(exited):
                timed_out = not self._stopped
                if self._killer is None:
                    self._killer = asyncio.ensure_future(self._terminate_group())
            returncode = await exited
            ended = time.monotonic()
            await self._finish_pump(pump)
        if self._killer is not None:
            await self._killer
        return RunResult(returncode, timed_out, self._stopped, "".join(self._pieces),
                         started, ended, self._first_step, self._last_step, self._log_error, len(self._strays),
                         self._counted_start)

    async def _within_limit(self, exited: asyncio.Future) -> bool:
        """Wait for ``exited``; False when the hard limit (on ``limit_clock``) came first."""
        assert self._proc is not None
        if self.hard_limit_s is None or not self.limit_clock.counts_cpu():
            done, _ = await asyncio.wait({exited}, timeout=self.hard_limit_s)
            return bool(done)
        watch = LimitWatch(self.limit_clock, self.hard_limit_s)
        while True:
            done, _ = await asyncio.wait({exited}, timeout=CHECK_S)
            if done:
                return True
            if watch.over(self._proc.pid):  # the group's id is the child's pid (its own session)
                return False

    async def _wait_exit(self) -> int:
        """The child's exit status, as soon as it exits. (asyncio's ``Process.wait()``
        on Python 3.11 also waits for the pipe to close, which a grandchild may hold.)"""
        assert self._proc is not None
        while self._proc.returncode is None:
            await asyncio.sleep(POLL_S)
        return self._proc.returncode

    async def _pump(self, log) -> None:
        """Read the merged output to EOF; each complete piece (up to the last line
        separator) is redacted, logged, kept and reported."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        held, tail = "", ""
        assert self._proc is not None and self._proc.stdout is not None
        while chunk := await self._proc.stdout.read(CHUNK_BYTES):
            text = held + decoder.decode(chunk)
            cut = max(text.rfind("\n"), text.rfind("\r")) + 1
            if cut == 0 and len(text) > MAX_HELD:
                cut = len(text)
            held = text[cut:]
            tail = self._take(log, text[:cut], tail)
        tail = self._take(log, held + decoder.decode(b"", final=True), tail)
        for line in flush_tail(tail):
            self._report(line)

    def _take(self, log, text: str, tail: str) -> str:
        """Redact ``text``, write it to the log, keep it, report its complete lines;
        returns the new unfinished-line tail."""
        if not text:
            return tail
        text = redact(text, self._secrets)
        if not self._log_error:
            try:
                log.write(text.encode("utf-8"))
            except OSError as exc:
                self._log_error = f"cannot write {self.log_path.name}: {exc.strerror or exc}"
        self._pieces.append(text)
        lines, tail = split_lines(tail, text)
        for line in lines:
            self._report(line)
        return tail

    async def _finish_pump(self, pump: asyncio.Future) -> None:
        """Let the reader drain; if a leftover grandchild holds the pipe, kill the group."""
        try:
            await asyncio.wait_for(asyncio.shield(pump), timeout=DRAIN_S)
        except asyncio.TimeoutError:
            self._signal_group(signal.SIGKILL)
            self._sweep()  # a setsid grandchild may hold the pipe
            try:
                await asyncio.wait_for(pump, timeout=DRAIN_S)
            except asyncio.TimeoutError:
                pass  # wait_for cancelled the reader; the log holds what arrived
        self._signal_group(signal.SIGKILL)  # orphans left in the group
        self._sweep()  # and those that left it

    def _sweep(self) -> None:
        if self._proc is not None:
            self._strays |= sweep(self.run_id, skip_group=self._proc.pid)
            self._strays |= sweep_orphans(self._since, live=(LIVE_RUNS | self._older) - {self._proc.pid},
                                          group=self._proc.pid)

    def _report(self, line: str) -> None:
        step = parse_step_line(line)
        now = time.monotonic()
        if step is not None:
            self._first_step = self._first_step if self._first_step is not None else now
            self._last_step = now
            self._count_from(step, now)
        if self.emit is None:
            return
        if step is not None:
            self.emit(StepLogged(experiment=self.experiment, **step))
        else:
            self.emit(LogLine(experiment=self.experiment, text=line))

    def _count_from(self, step: dict, now: float) -> None:
        """Find when the counted training began (RunResult.counted_start): a step line
        prints the progress counted before its own step, so the first line above 0%
        follows the first counted step, whose line (the last at 0%) ended it."""
        if self._counted_start is not None:
            return
        if step["progress_pct"] <= 0.0:
            self._uncounted = (now, step["dt_ms"] / 1000.0)
        elif self._uncounted is not None:
            line_time, dt = self._uncounted
            self._counted_start = line_time - dt
        else:  # progress from the first line on: the run counts every step
            self._counted_start = now - step["dt_ms"] / 1000.0

    def _signal_group(self, sig: int) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass  # the group is already gone

    async def _terminate_group(self) -> None:
        """SIGTERM the group, wait up to kill_grace_s for the child, then SIGKILL."""
        assert self._proc is not None
        self._signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(self._wait_exit(), timeout=self.kill_grace_s)
        except asyncio.TimeoutError:
            pass
        self._signal_group(signal.SIGKILL)
