"""``cockpit status`` and ``cockpit stop``: a workspace's session seen and ended from a script.

``status`` reads only files (``.cockpit/state.json``, the journal, results.tsv,
records.jsonl) and the engine lock, so it works on a daemon, a headless
session or none, and never disturbs a run. ``stop`` does what ``x`` then ``y``
does in the cockpit: the engine's process gets SIGTERM, which both the daemon
and a headless engine take as Stop (the training run's group is killed and
logged as a "[stopped]" crash row); it then waits until the engine lock is
released, i.e. the process is gone.
"""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from cockpit.store.journal import Journal, JournalError
from cockpit.store.ledger import LedgerError
from cockpit.store.records import read_records
from cockpit.store.results import read_rows
from cockpit.store.rundir import RunDir
from cockpit.rules.standing import running_best

STOP_WAIT_S = 120.0
"""How long ``stop`` waits for the engine to end (seconds): a run's process group
gets SIGTERM then SIGKILL after the kill grace, the row is written, the engine exits."""


@dataclass
class Status:
    """One workspace's session as the files say: ``running`` (an engine holds the lock),
    ``pid``, ``mode`` (daemon/headless), ``tag``, ``phase`` and ``experiment``
    (from the journal: training, committed, between experiments), ``rows`` in
    results.tsv, ``best`` (the incumbent's val_bpb, bits per byte), ``sigma`` of the
    noise floor (None when not measured), ``last`` row as text, ``problems``
    (unreadable files, said in one line each)."""

    workspace: Path
    running: bool = False
    pid: Optional[int] = None
    mode: str = ""
    tag: str = ""
    ended: str = ""
    phase: str = ""
    experiment: Optional[int] = None
    rows: int = 0
    best: Optional[float] = None
    sigma: Optional[float] = None
    last: str = ""
    problems: list[str] = field(default_factory=list)


def read_status(workspace: Path) -> Status:
    """The Status of ``workspace`` (nothing is written, no engine is contacted)."""
    rundir = RunDir(workspace)
    state = rundir.read_state() or {}
    status = Status(workspace, running=rundir.engine_running(), pid=state.get("pid"), mode=state.get("mode", ""),
                    tag=state.get("tag", ""))
    if not status.running and state:
        status.ended = str(state.get("reason") or ("died" if state.get("status") != "ended" else ""))
    _journal_phase(workspace, status)
    try:
        rows = read_rows(workspace / "results.tsv")
    except LedgerError as exc:
        status.problems.append(str(exc))
        rows = []
    status.rows = len(rows)
    if rows:
        status.best = running_best(rows)[-1].best
        last = rows[-1]
        value = "-" if not last.val_bpb else f"{last.val_bpb:.6f}"
        status.last = f"{last.commit} {last.status} {value} {last.description}"
    floors = [r for r in read_records(workspace / "records.jsonl", skip=status.problems.append)
              if r.get("kind") == "noise-floor" and (not status.tag or r.get("tag") == status.tag)]
    if floors and isinstance(floors[-1].get("sigma"), (int, float)) and math.isfinite(floors[-1]["sigma"]):
        status.sigma = float(floors[-1]["sigma"])
    return status


def _journal_phase(workspace: Path, status: Status) -> None:
    """The phase and experiment from the journal's newest entries of the session."""
    try:
        entries, _ = Journal(workspace).read()
    except (JournalError, OSError) as exc:
        status.problems.append(f"the journal cannot be read: {exc}")
        return
    if not status.tag:
        tags = [e.get("tag") for e in entries if e.get("entry") == "session"]
        status.tag = tags[-1] if tags else ""
    opened: dict[str, dict] = {}
    training: set[str] = set()
    for entry in entries:
        if entry.get("tag") not in (None, status.tag) and entry.get("entry") != "close":
            continue
        kind = entry.get("entry")
        if kind == "open":
            opened[entry["id"]] = entry
        elif kind == "train":
            training.add(entry.get("id", ""))
        elif kind == "close":
            opened.pop(entry.get("id", ""), None)
        elif kind == "row" and entry.get("experiment") is not None:
            status.experiment = int(entry["experiment"]) + 1
    if not status.running:
        status.phase = "not running"
        return
    if opened:
        entry = list(opened.values())[-1]
        status.experiment = entry.get("experiment")
        status.phase = "training" if entry["id"] in training else "committed"
    else:
        status.phase = "between experiments (proposing, measuring or paused)"


def format_status(status: Status) -> str:
    """One screen of text for a person (``cockpit status``)."""
    if status.running:
        head = f"running: yes, pid {status.pid} ({status.mode or 'engine'})"
    else:
        head = "running: no" + (f" (last session ended: {status.ended})" if status.ended else "")
    best = "-" if status.best is None else f"{status.best:.6f}"
    sigma = "not measured" if status.sigma is None else f"sigma {status.sigma:.6f}"
    lines = [f"workspace:   {status.workspace}", head,
             f"tag:         {status.tag or '-'}" + (f" (branch autoresearch/{status.tag})" if status.tag else ""),
             f"phase:       {status.phase or '-'}",
             f"experiment:  {'-' if status.experiment is None else status.experiment}",
             f"best:        {best}",
             f"rows:        {status.rows} in results.tsv",
             f"noise floor: {sigma}",
             f"last row:    {status.last or '-'}"]
    lines += [f"problem:     {problem}" for problem in status.problems]
    return "\n".join(lines)


def _alive(pid: int) -> bool:
    """True while process ``pid`` exists and has not exited (a zombie has: its parent reaps it)."""
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except ProcessLookupError:
        return False
    except (OSError, IndexError):  # PermissionError: it exists, another user's
        return True  # no /proc (macOS): kill(pid, 0) said it exists


def stop_engine(workspace: Path, wait_s: float = STOP_WAIT_S, say=print) -> bool:
    """Stop the engine running on ``workspace`` and wait until it is gone. Returns
    False when none runs. Raises TimeoutError when it is still there after ``wait_s``
    seconds, ProcessLookupError-free: a pid that vanished counts as stopped."""
    rundir = RunDir(workspace)
    if not rundir.engine_running():
        return False
    state = rundir.read_state() or {}
    pid = state.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        raise TimeoutError(f"an engine holds {rundir.root / 'engine.lock'} but state.json names no pid")
    say(f"stopping session {state.get('tag', '?')} (pid {pid}): the running experiment is killed and "
        "logged as [stopped]")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + wait_s
    while rundir.engine_running() or _alive(pid):  # the lock goes first, the process after it
        if time.monotonic() > deadline:
            raise TimeoutError(f"the engine (pid {pid}) is still running after {wait_s:.0f}s; "
                               f"see {rundir.engine_log}")
        time.sleep(0.1)
    return True
