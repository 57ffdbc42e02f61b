"""Processes a run left behind after clearing its environment: found by the process tree.

``cockpit.training.sweep.sweep`` finds a run's leftovers by the ``COCKPIT_RUN_ID`` they
inherit; a descendant that calls ``setsid()`` and ``execve`` with an empty
environment carries no run id and would survive the run. This module closes
that gap with the kernel's process tree instead of a marker the child controls:

- The engine marks itself a *child subreaper* (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``,
  since Linux 3.4). A process whose parent dies is then re-parented to the engine
  rather than to init, whatever session or process group it moved to, so every
  descendant of a run stays in the engine's own process tree.
- After a run ends, ``sweep_orphans`` kills every child of the engine that is
  not in the engine's session (a run starts a session of its own and nothing of
  the engine's own, such as git, leaves it), was started no earlier than the
  run (its ``/proc/PID/stat`` start time, clock ticks since boot), was not a
  child before the run started and is not a live run; then all of their descendants; then reaps them (``waitpid``), so no
  zombie is left. It repeats until a pass finds none (a fork between passes is
  re-parented to the engine and found by the next one).

No cgroups are needed (they need delegation that a plain user on a rented GPU
box rarely has). Elsewhere than Linux both functions do nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path
from typing import Iterable, Optional

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
PR_GET_CHILD_SUBREAPER = 37
PASSES = 10  # sweeps over /proc per call; each re-parents the children of what the last one killed
REAP_S = 1.0  # seconds one pass waits for the killed children to be reapable

_subreaper: Optional[bool] = None


def become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants (once per process);
    True when it is one. False off Linux or when prctl fails."""
    global _subreaper
    if _subreaper is None:
        _subreaper = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
            except (OSError, AttributeError):
                _subreaper = False
    return _subreaper


def start_ticks(pid: int) -> Optional[int]:
    """Start time of process ``pid`` in clock ticks since boot (``/proc/PID/stat``
    field 22), or None when it cannot be read (gone, or no /proc)."""
    stat = _stat(pid)
    return None if stat is None else stat[4]


def ticks_now() -> Optional[int]:
    """Clock ticks since boot now (``/proc/uptime`` times ``SC_CLK_TCK``), one tick
    early for its rounding; comparable with ``start_ticks``. None without /proc."""
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0, int(uptime * os.sysconf("SC_CLK_TCK")) - 1)
    except (OSError, ValueError, IndexError):
        return None


def _stat(pid: int) -> Optional[tuple[str, int, int, int, int]]:
    """(state, ppid, process group, session id, start ticks) of ``pid`` from /proc, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces or ')'
        return fields[0], int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _table() -> dict[int, tuple[str, int, int, int, int]]:
    table = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for name in entries:
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None:
                table[int(name)] = stat
    return table


def _descendants(roots: Iterable[int], table: dict[int, tuple[str, int, int, int, int]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def foreign_children() -> set[int]:
    """Pids of this process's children outside its session now (taken before a run
    starts: those are not the run's, and ``sweep_orphans`` spares them)."""
    me, my_session = os.getpid(), os.getsid(0)
    return {pid for pid, (_, ppid, _, session, _) in _table().items() if ppid == me and session != my_session}


def sweep_orphans(since_ticks: Optional[int], live: Iterable[int] = (), group: Optional[int] = None) -> set[int]:
    """SIGKILL and reap the processes runs left behind outside the engine's session
    (module docstring): children of this process started at or after ``since_ticks``
    (clock ticks since boot, ``start_ticks`` of the run; a tick is 10 ms, so
    ``foreign_children`` taken before the spawn goes into ``live`` too) in another
    session and not in ``live`` (pids of runs still going, and those that were
    children before the run), with all their descendants. Returns the
    pids killed that had left the run's process group ``group`` (those still in it
    were SIGKILLed with the group just before and are only dying: they are killed
    again and reaped, not counted as escapees); an empty set when this process is
    not a subreaper, ``since_ticks`` is None or there is no /proc."""
    if not _subreaper or since_ticks is None:
        return set()
    me, my_session, spared = os.getpid(), os.getsid(0), set(live)
    killed: set[int] = set()
    for _ in range(PASSES):
        table = _table()
        escaped = [pid for pid, (_, ppid, _, session, ticks) in table.items()
                   if ppid == me and session != my_session and ticks >= since_ticks and pid not in spared]
        if not escaped:
            break
        for pid in _descendants(escaped, table):
            if table.get(pid, ("Z",))[0] != "Z":
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    continue
                if group is None or table[pid][2] != group:
                    killed.add(pid)
        _reap(escaped)
    return killed


def _reap(pids: Iterable[int]) -> None:
    """waitpid each of ``pids`` (children of this process, just SIGKILLed) without
    blocking the caller for more than REAP_S; one left unreaped is found again
    by the next pass (as a zombie it is not killed again, only reaped)."""
    pending, deadline = set(pids), time.monotonic() + REAP_S
    while pending:
        for pid in list(pending):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    pending.discard(pid)
            except ChildProcessError:
                pending.discard(pid)  # not ours (any more): nothing to reap
        if pending:
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)
