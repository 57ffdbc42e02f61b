"""cockpit.training.ray_slots across a simulated two-node cluster (ray.cluster_utils.Cluster:
a head and a worker node on this machine, 2 logical GPUs each): runs land in each node's
own run directory, and a node removed mid-run turns its runs into WorkerLost while the
other node's runs finish; a fleet session over both nodes that loses one."""

import asyncio
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from cockpit.events import StepLogged  # noqa: E402
from cockpit.training import ray_slots  # noqa: E402
from cockpit.training.ray_slots import GpuSlot, RemoteRun, WorkerLost  # noqa: E402
from cockpit.agents.offline import OfflineAgent  # noqa: E402
from cockpit.engine.fleet import FleetEngine  # noqa: E402
from cockpit.engine.fleet_slots import ray_fleet  # noqa: E402
from cockpit.engine.session import SessionConfig  # noqa: E402
from cockpit.rules.gpus import GpuSpec  # noqa: E402
from cockpit.store.settings import Settings  # noqa: E402
from engine_support import make_workspace, processes_in  # noqa: E402
from fleet_checks import check_ledger  # noqa: E402

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


def test_a_fleet_session_loses_a_node_and_keeps_its_ledger(two_nodes):
    """A fleet session over both nodes (4 GPU slots); the worker node is removed while its
    runs train: each becomes one crash row ``[worker lost]``, the session ends on the head
    node's two slots with one row per experiment and the ratchet invariant intact, and no
    process is left in the lost node's run directories."""
    cluster, worker, tmp_path = two_nodes
    slots = ray_fleet(GpuSpec(4))
    worker_node = next(n["NodeID"] for n in ray.nodes() if n["NodeManagerPort"] == worker.node_manager_port)[:12]
    lost_slots = {s.worker for s in slots if s.node == worker_node}
    assert len(lost_slots) == 2
    ws = make_workspace(tmp_path / "ws", train_py=FIXED_RUN.decode())
    config = SessionConfig(tag="nodes", max_experiments=14, hard_limit_grace_s=20, kill_grace_s=1,
                           settings=Settings(budget_s=3.0, noise_runs=3))
    engine = FleetEngine(ws, config, OfflineAgent(), lambda event: None, slots)

    async def lose_the_worker_node_mid_session() -> str:
        task = asyncio.ensure_future(engine.run())
        while engine.book.state.rows < 5 or len(engine.flying) < 4:  # the baseline, a round, all four busy
            assert not task.done(), task.result()
            await asyncio.sleep(0.05)
        cluster.remove_node(worker)
        return await asyncio.wait_for(task, timeout=180)

    assert asyncio.run(lose_the_worker_node_mid_session()) in ("max-experiments", "agent-exhausted")
    experiments = check_ledger(ws, "nodes")
    lost = [r for r in experiments if r["description"].endswith("[worker lost]")]
    assert len(lost) == 2 and {r["worker"] for r in lost} == lost_slots
    assert all(r["status"] == "crash" and r["node"] == worker_node for r in lost)
    last_lost = max(r["experiment"] for r in lost)
    after = [r for r in experiments if r["experiment"] > last_lost]
    assert after and {r["worker"] for r in after}.isdisjoint(lost_slots)  # the session went on without them
    node_runs = tmp_path / "runs" / worker_node
    for _ in range(50):
        if not any(processes_in(d) for d in node_runs.iterdir() if d.is_dir()):
            break
        time.sleep(0.1)
    assert [d.name for d in node_runs.iterdir() if d.is_dir() and processes_in(d)] == []
