"""The fleet of a ``--gpus N`` session (N > 1): which GPUs, and the FleetEngine over them on Ray."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from cockpit.rules.gpus import parse_gpus
from cockpit.store.workspace import Workspace


def session_gpus(args: argparse.Namespace, workspace: Workspace):
    """The GPUs the session asks for (``--gpus`` or cockpit.toml's ``gpus``; cockpit.rules.gpus)."""
    return parse_gpus(str(workspace.settings.with_flags(args).gpus or 1))


def fleet_factory(workspace: Workspace, config, agent, gpus, address: Optional[str]):
    """The engine factory of ``--gpus N`` > 1: Ray started (or joined at ``address``) and one
    slot per GPU made first (cockpit.engine.fleet_slots; RunnerError or GpuSpecError: one
    line), then cockpit.engine.fleet's FleetEngine over them."""
    from cockpit.engine.fleet import FleetEngine
    from cockpit.engine.fleet_slots import ray_fleet

    slots = ray_fleet(gpus, address)
    print(f"cockpit: {len(slots)} GPU slots on Ray: " + ", ".join(f"{s.worker} {s.host}/{s.node[:6]} "
                                                                 f"CUDA_VISIBLE_DEVICES={s.gpu or '-'}" for s in slots),
          file=sys.stderr)
    return lambda emit: FleetEngine(workspace, config, agent, emit, slots)
