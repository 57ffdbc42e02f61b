"""cockpit.training.ray_slots across a simulated two-node cluster (ray.cluster_utils.Cluster:
a head and a worker node on this machine, 2 logical GPUs each): runs land in each node's
own run directory, and a node removed mid-run turns its runs into WorkerLost while the
other node's runs finish."""

import asyncio
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from cockpit.events import StepLogged  # noqa: E402
from cockpit.training import ray_slots  # noqa: E402
from cockpit.training.ray_slots import GpuSlot, RemoteRun, WorkerLost  # noqa: E402

FIXED_RUN = (Path(__file__).resolve().parents[2] / "bench" / "fixed_run.py").read_bytes()
pytestmark = pytest.mark.slow


@pytest.fixture
def two_nodes(tmp_path, monkeypatch):
    monkeypatch.setenv(ray_slots.RUN_ROOT_ENV, str(tmp_path / "runs"))
    ray_slots.stop_ray()  # another module's local Ray, if one is still up
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 2})
    worker = cluster.add_node(num_cpus=1, num_gpus=2)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster, worker, tmp_path
    ray.shutdown()
    cluster.shutdown()


def test_runs_on_both_nodes_and_a_lost_node_loses_only_its_runs(two_nodes):
    cluster, worker, tmp_path = two_nodes
    slots = [GpuSlot.remote(i) for i in range(4)]
    infos = ray.get([s.info.remote() for s in slots], timeout=90)
    assert len({i.node for i in infos}) == 2  # 4 GPUs in all: both nodes hold two slots
    worker_node = next(n["NodeID"] for n in ray.nodes() if n["NodeManagerPort"] == worker.node_manager_port)
    on_worker = [i.node == worker_node[:12] for i in infos]
    assert sum(on_worker) == 2
    events = [[] for _ in slots]
    runs = [RemoteRun(s, f"exp-{i}", {"train.py": FIXED_RUN}, [sys.executable, "-u", "train.py"],
                      tmp_path / f"exp-{i}.log", env={"COCKPIT_TIME_BUDGET": "6"}, hard_limit_s=60,
                      kill_grace_s=1, experiment=i, emit=events[i].append) for i, s in enumerate(slots)]

    async def remove_the_worker_node_mid_run():
        tasks = [asyncio.ensure_future(r.wait()) for r in runs]
        while not all(any(isinstance(e, StepLogged) for e in ev) for ev in events):
            await asyncio.sleep(0.1)
        for i, info in enumerate(infos):  # each run trains in its own node's run directory
            assert (tmp_path / "runs" / info.node / f"exp-{i}" / "train.py").exists()
        cluster.remove_node(worker)
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(remove_the_worker_node_mid_run())
    for lost, outcome in zip(on_worker, outcomes):
        if lost:
            assert isinstance(outcome, WorkerLost), outcome
        else:
            assert not isinstance(outcome, BaseException), outcome
            assert outcome.returncode == 0 and "val_bpb" in outcome.text
