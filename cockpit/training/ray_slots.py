"""Experiments on Ray: one actor per GPU, each running train.py in a run directory on its node.

Imported only when a session has more than one experiment in flight (``--gpus``
N > 1, cockpit.rules.gpus); a one-GPU session never imports Ray. The engine on the
head owns every ledger; a worker only trains and reports.

* ``start_ray(address)`` joins the cluster at ``address`` (else ``RAY_ADDRESS``; the
  session's ``--ray-address`` once the fleet engine lands) or starts a local Ray on this node; ``COCKPIT_RAY_NUM_GPUS``
  gives a local Ray that many logical GPUs (a CPU machine: the tests and
  bench/scaling.py; Ray sets ``CUDA_VISIBLE_DEVICES`` per actor all the same).
* ``GpuSlot`` is an async Ray actor holding one GPU (``num_gpus=1``). ``start``
  writes the files it is given (prepare.py, the experiment's train.py, cockpit.toml)
  into ``<root>/<node id>/<key>/`` on its node (root: ``COCKPIT_RUN_ROOT``, else
  ~/.cache/cockpit/runs), runs the prepare command there once per node and
  prepare.py version (a file lock makes the slots of one node wait for one
  prepare), then runs the command through cockpit.training.runner.Run: its own
  process group, the run-environment allow-list, the hard limit, the stray sweep;
  with SIGKILL as its parent-death signal, so a slot that dies takes its run along.
* ``RemoteRun`` is the head's handle, with Run's interface (``await wait()`` ->
  RunResult, ``kill()``): it polls the slot every ``POLL_S`` seconds for new
  output, writes it to the head's log and re-emits the step and log events. A
  slot that dies under it (the worker process killed, its node lost) raises
  ``WorkerLost``; the run is then one crash row (cockpit.engine).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import ray
from ray.exceptions import RayActorError, RayError

from cockpit.events import Emit
from cockpit.training.run_result import RunnerError, RunResult, WorkerLost
from cockpit.rules.budget_clock import WALL, BudgetClock
from cockpit.training.runner import Run

RUN_ROOT_ENV = "COCKPIT_RUN_ROOT"
LOGICAL_GPUS_ENV = "COCKPIT_RAY_NUM_GPUS"
POLL_S = 0.25  # seconds between the head's polls of a running slot
# The run dies with its slot: a worker killed (OOM killer, kill -9, its node's raylet gone)
# must not leave train.py holding the GPU. setpriv (util-linux) sets the parent-death signal
# and execs the command in place (same pid, same process group); without it, no prefix.
DIE_WITH_SLOT = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []


@dataclass(frozen=True)
class SlotInfo:
    """Where a slot runs: ``slot`` (0..N-1, the session's numbering), ``node`` (Ray's
    node id, first 12 hex digits), ``host`` (the node's host name), ``gpu`` (its
    CUDA_VISIBLE_DEVICES, "" when Ray gave none)."""

    slot: int
    node: str
    host: str
    gpu: str


def start_ray(address: Optional[str] = None) -> dict:
    """Join the Ray cluster at ``address`` (else ``RAY_ADDRESS``), or start a local one
    (with ``COCKPIT_RAY_NUM_GPUS`` logical GPUs when set). Returns the cluster's
    resources (``{"GPU": 8.0, "CPU": 2.0, ...}``). Raises RunnerError when Ray
    cannot start or join, with Ray's reason."""
    target = address or os.environ.get("RAY_ADDRESS") or None
    options: dict = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if target is None and os.environ.get(LOGICAL_GPUS_ENV):
        options["num_gpus"] = int(os.environ[LOGICAL_GPUS_ENV])
    try:
        if not ray.is_initialized():
            ray.init(address=target, **options)
        return dict(ray.cluster_resources())
    except (RayError, ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {target}" if target else "a local Ray"
        raise RunnerError(f"cannot start {where}: {exc}") from None


def stop_ray() -> None:
    """Leave (or stop, when this process started it) the Ray of ``start_ray``; only what
    this process started is stopped (never ``ray stop``)."""
    if ray.is_initialized():
        ray.shutdown()


@ray.remote(num_gpus=1, num_cpus=0)  # placed by its GPU; an actor's default CPU would cap slots at the CPUs
class GpuSlot:
    """One GPU of the cluster (module docstring). Methods are called through Ray
    (``slot.start.remote(...)``); one run at a time per slot."""

    def __init__(self, slot: int, root: Optional[str] = None) -> None:
        node = ray.get_runtime_context().get_node_id()
        self.info_ = SlotInfo(slot, node[:12], socket.gethostname(), os.environ.get("CUDA_VISIBLE_DEVICES", ""))
        base = Path(root or os.environ.get(RUN_ROOT_ENV) or Path.home() / ".cache" / "cockpit" / "runs")
        self.root = base.expanduser() / self.info_.node
        self.runs: dict[str, tuple[Run, asyncio.Task, list]] = {}

    def info(self) -> SlotInfo:
        """Where this slot runs."""
        return self.info_

    async def start(self, key: str, files: dict[str, bytes], command: Sequence[str], env: dict,
                    hard_limit_s: Optional[float], kill_grace_s: float, experiment: int,
                    prepare: Optional[Sequence[str]] = None, limit_clock: BudgetClock = WALL) -> str:
        """Write ``files`` into this node's run directory ``key``, run ``prepare`` there
        first when this node has not yet run it for this prepare.py, then start
        ``command``. Returns the run directory. Raises RunnerError when a file cannot
        be written, prepare fails, or the command cannot start."""
        run_dir = self.root / key
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                (run_dir / name).write_bytes(data)
        except OSError as exc:
            raise RunnerError(f"cannot write the run directory {run_dir} on {self.info_.host}: {exc}") from None
        if prepare:
            await self._prepare_once(run_dir, prepare, env, files.get("prepare.py", b"") + files.get("cockpit.toml", b""))
        events: list = []
        run = Run([*DIE_WITH_SLOT, *command], run_dir, run_dir / "run.log", env=env, hard_limit_s=hard_limit_s,
                  kill_grace_s=kill_grace_s, experiment=experiment, emit=events.append, limit_clock=limit_clock)
        task = asyncio.ensure_future(run.wait())
        self.runs[key] = (run, task, events)
        await asyncio.sleep(0)  # let the process start before the first poll
        return str(run_dir)

    async def _prepare_once(self, run_dir: Path, prepare: Sequence[str], env: dict, harness: bytes) -> None:
        """Run ``prepare`` in ``run_dir`` unless this node already did for this
        ``harness`` (prepare.py and cockpit.toml, whose profile it reads: a marker per
        sha256 under the node's root, behind a file lock)."""
        marker = self.root / f"prepared-{hashlib.sha256(harness).hexdigest()[:16]}"
        with open(self.root / "prepare.lock", "w") as lock:
            await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
            try:
                if marker.exists():
                    return
                result = await Run(prepare, run_dir, run_dir / "prepare.log", env=env).wait()
                if result.returncode != 0:
                    raise RunnerError(f"prepare failed on {self.info_.host} (exit {result.returncode}): "
                                      f"{result.failure()}")
                marker.touch()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def poll(self, key: str, events_seen: int, output_seen: int) -> tuple[list, list[str], bool]:
        """(events after the first ``events_seen``, output pieces after the first
        ``output_seen``, whether the run has ended)."""
        run, task, events = self.runs[key]
        return events[events_seen:], run.output(output_seen), task.done()

    async def result(self, key: str) -> RunResult:
        """The run's RunResult, once it ended (its run directory stays for inspection)."""
        run, task, _ = self.runs.pop(key)
        return await task

    def kill(self, key: str) -> None:
        """Stop run ``key`` (SIGTERM to its group, SIGKILL after the grace); a no-op when it ended."""
        if key in self.runs:
            self.runs[key][0].kill()


class RemoteRun:
    """Run ``command`` on ``slot`` (a GpuSlot handle) with Run's interface (module
    docstring). ``files`` are written into the run directory (name -> bytes);
    ``log_path`` is the head's copy of the output; events carry ``experiment``.
    ``on_start(0)`` is called once the remote process runs (its pid is the node's)."""

    def __init__(self, slot, key: str, files: dict[str, bytes], command: Sequence[str], log_path: Path, *,
                 env: Optional[dict] = None, hard_limit_s: Optional[float] = None, kill_grace_s: float = 5.0,
                 experiment: int = 0, emit: Optional[Emit] = None, on_start: Optional[Callable[[int], None]] = None,
                 prepare: Optional[Sequence[str]] = None, limit_clock: BudgetClock = WALL) -> None:
        self.slot, self.key, self.files, self.command = slot, key, files, list(command)
        self.limit_clock = limit_clock
        self.log_path, self.env, self.hard_limit_s, self.kill_grace_s = Path(log_path), dict(env or {}), hard_limit_s, kill_grace_s
        self.experiment, self.emit, self.on_start, self.prepare = experiment, emit, on_start, prepare
        self._stopped, self._started = False, False

    def kill(self) -> None:
        """Stop the remote run (now, or as soon as it has started)."""
        self._stopped = True
        if self._started:
            self.slot.kill.remote(self.key)

    async def wait(self) -> RunResult:
        """Start the run on its slot, stream it to the head's log and events, return
        its RunResult. Raises WorkerLost when the slot dies, RunnerError when the
        run cannot start there."""
        try:
            await self.slot.start.remote(self.key, self.files, self.command, self.env, self.hard_limit_s,
                                         self.kill_grace_s, self.experiment, self.prepare, self.limit_clock)
            self._started = True
            if self.on_start is not None:
                self.on_start(0)
            if self._stopped:
                self.slot.kill.remote(self.key)
            await self._stream()
            return await self.slot.result.remote(self.key)
        except RayActorError as exc:
            raise WorkerLost(f"the worker of experiment {self.experiment} was lost: {type(exc).__name__}") from None
        except RayError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, RunnerError):
                raise RunnerError(str(cause)) from None
            raise WorkerLost(f"experiment {self.experiment} failed on its worker: {exc}") from None

    async def _stream(self) -> None:
        """Copy the slot's output into the head's log and events until the run ends."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        events_seen = output_seen = 0
        with open(self.log_path, "w", encoding="utf-8", newline="") as log:
            while True:
                events, pieces, done = await self.slot.poll.remote(self.key, events_seen, output_seen)
                events_seen, output_seen = events_seen + len(events), output_seen + len(pieces)
                log.write("".join(pieces))
                log.flush()
                for event in events if self.emit is not None else ():
                    self.emit(event)
                if done:
                    return
                await asyncio.sleep(POLL_S)
