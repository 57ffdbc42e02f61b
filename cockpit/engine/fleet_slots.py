"""The GPUs of a fleet session (``--gpus N`` > 1): one ``FleetSlot`` per GPU, on Ray.

``ray_fleet(spec, address)`` starts a local Ray (or joins the cluster at ``address`` /
RAY_ADDRESS), resolves ``--gpus`` against the cluster's GPUs (cockpit.rules.gpus) and
makes one GpuSlot actor per GPU (cockpit.training.ray_slots); ray is imported here
only, so a session on one GPU never imports it. A ``FleetSlot`` names where it runs
(slot number, node, host, GPU) and starts runs there with Run's interface
(``launch(...)`` -> a RemoteRun: ``await wait()``, ``kill()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from cockpit.rules.budget_clock import WALL, BudgetClock
from cockpit.rules.gpus import GpuSpec
from cockpit.training.run_result import RunnerError


@dataclass
class FleetSlot:
    """One GPU of the fleet: ``index`` (0..N-1), ``node`` (Ray node id, 12 hex digits),
    ``host``, ``gpu`` (its CUDA_VISIBLE_DEVICES), ``actor`` (the GpuSlot handle)."""

    index: int
    node: str
    host: str
    gpu: str
    actor: Any

    @property
    def worker(self) -> str:
        """The slot's name in rows, records and the workers strip: ``gpu<index>``."""
        return f"gpu{self.index}"

    def launch(self, key: str, files: dict[str, bytes], command: Sequence[str], log_path: Path, *,
               env: dict, hard_limit_s: float, kill_grace_s: float, experiment: int,
               emit: Optional[Callable] = None, on_start: Optional[Callable[[int], None]] = None,
               prepare: Optional[Sequence[str]] = None, limit_clock: BudgetClock = WALL):
        """A RemoteRun of ``command`` in this slot's node-local run directory ``key``
        (``files`` written there), its output copied to the head's ``log_path``."""
        from cockpit.training.ray_slots import RemoteRun

        return RemoteRun(self.actor, key, files, command, log_path, env=env, hard_limit_s=hard_limit_s,
                         kill_grace_s=kill_grace_s, experiment=experiment, emit=emit, on_start=on_start,
                         prepare=prepare, limit_clock=limit_clock)


def ray_fleet(spec: GpuSpec, address: Optional[str] = None, run_root: Optional[str] = None) -> list[FleetSlot]:
    """One FleetSlot per GPU ``spec`` asks for, on the Ray at ``address`` (else RAY_ADDRESS,
    else a local one). Raises RunnerError when Ray cannot start, and GpuSpecError (a
    ValueError) when the cluster has fewer GPUs than asked."""
    import ray

    from cockpit.training.ray_slots import GpuSlot, start_ray

    resources = start_ray(address)
    count = spec.resolve(int(resources.get("GPU", 0)))
    actors = [GpuSlot.remote(i, run_root) for i in range(count)]
    try:
        infos = ray.get([actor.info.remote() for actor in actors], timeout=120)
    except Exception as exc:  # GetTimeoutError, RayActorError: the actors never came up
        raise RunnerError(f"the {count} GPU slots did not start on Ray: {exc}") from None
    return [FleetSlot(info.slot, info.node, info.host, info.gpu, actor) for info, actor in zip(infos, actors)]
