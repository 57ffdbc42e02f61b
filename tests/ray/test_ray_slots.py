"""cockpit.training.ray_slots on a real local Ray with 8 logical GPUs (no GPU here): one
slot per GPU, a run streamed back from its node's run directory, prepare once per node,
kill, a lost worker (its run dies with it), and every socket Ray listens on inside 127.0.0.0/8."""

import asyncio
import ipaddress
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from cockpit.events import LogLine, StepLogged  # noqa: E402
from cockpit.rules.summary import parse_summary  # noqa: E402
from cockpit.training import ray_slots  # noqa: E402
from cockpit.training.ray_slots import GpuSlot, RemoteRun, WorkerLost  # noqa: E402
from engine_support import processes_in  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXED_RUN = (ROOT / "bench" / "fixed_run.py").read_bytes()  # the run contract's lines, sleeps, no torch
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray with 8 logical GPUs and 2 CPUs, stopped at the end (only what we started)."""
    root = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv(ray_slots.LOGICAL_GPUS_ENV, "8")
    mp.setenv(ray_slots.RUN_ROOT_ENV, str(root))
    mp.delenv("RAY_ADDRESS", raising=False)
    resources = ray_slots.start_ray()
    yield resources, root
    ray_slots.stop_ray()
    mp.undo()


@pytest.fixture(scope="module")
def slots(cluster):
    handles = [GpuSlot.remote(i) for i in range(8)]
    ray.get([h.info.remote() for h in handles], timeout=90)
    return handles


def remote(slot, key, tmp_path, budget="1", events=None, prepare=None, **files):
    env = {"COCKPIT_TIME_BUDGET": budget}
    return RemoteRun(slot, key, {"train.py": FIXED_RUN, **files}, [sys.executable, "-u", "train.py"],
                     tmp_path / f"{key}.log", env=env, hard_limit_s=60, kill_grace_s=2, experiment=7,
                     emit=None if events is None else events.append, prepare=prepare)


def test_eight_logical_gpus_give_eight_slots_one_device_each(cluster, slots):
    resources, _ = cluster
    assert resources["GPU"] == 8
    infos = ray.get([s.info.remote() for s in slots], timeout=90)
    assert sorted(i.gpu for i in infos) == [str(g) for g in range(8)]
    assert [i.slot for i in infos] == list(range(8))
    assert len({i.node for i in infos}) == 1


def test_a_remote_run_streams_its_lines_and_returns_its_summary(cluster, slots, tmp_path):
    _, root = cluster
    events = []
    result = asyncio.run(remote(slots[0], "exp-0001-abc1234", tmp_path, events=events).wait())
    assert result.returncode == 0 and not result.stopped and not result.timed_out
    assert float(parse_summary(result.text)["val_bpb"]) > 0
    steps = [e for e in events if isinstance(e, StepLogged)]
    assert len(steps) >= 2 and all(e.experiment == 7 for e in events)
    assert any(isinstance(e, LogLine) and e.text.startswith("val_bpb") for e in events)
    head_log = (tmp_path / "exp-0001-abc1234.log").read_bytes().decode()  # \r kept
    assert head_log == result.text  # the head's log is the run's whole output
    node = ray.get(slots[0].info.remote(), timeout=30).node
    assert (root / node / "exp-0001-abc1234" / "train.py").read_bytes() == FIXED_RUN  # the node's run directory


def test_prepare_runs_once_per_node_for_one_prepare_py(cluster, slots, tmp_path):
    _, root = cluster
    counter = tmp_path / "prepared"
    prep = f"open({str(counter)!r}, 'a').write('x')\n".encode()
    runs = [remote(slots[i], f"prep-{i}", tmp_path, budget="0.5", prepare=[sys.executable, "prepare.py"],
                   **{"prepare.py": prep}) for i in (1, 2, 3)]

    async def all_three():
        return await asyncio.gather(*(r.wait() for r in runs))

    results = asyncio.run(all_three())
    assert all(r.returncode == 0 for r in results)
    assert counter.read_text() == "x"  # three slots on one node, one prepare


def test_kill_stops_the_remote_run(cluster, slots, tmp_path):
    events = []
    run = remote(slots[4], "killed", tmp_path, budget="30", events=events)

    async def kill_after_first_step():
        task = asyncio.ensure_future(run.wait())
        while not any(isinstance(e, StepLogged) for e in events):
            await asyncio.sleep(0.1)
        run.kill()
        return await task

    result = asyncio.run(kill_after_first_step())
    assert result.stopped and result.returncode != 0
    assert result.ended - result.started < 20


def test_a_worker_killed_mid_run_is_worker_lost(cluster, slots, tmp_path):
    slot = slots[7]  # this test's own: all 8 GPUs are held by the module's slots
    events = []
    run = remote(slot, "lost", tmp_path, budget="30", events=events)

    async def kill_worker():
        task = asyncio.ensure_future(run.wait())
        while not events:
            await asyncio.sleep(0.1)
        ray.kill(slot)
        return await task

    with pytest.raises(WorkerLost, match="experiment 7"):
        asyncio.run(kill_worker())
    run_dir = next(cluster[1].glob("*/lost"))
    for _ in range(50):  # the run dies with its slot (parent-death signal), not at its budget's end
        if not processes_in(run_dir):
            break
        time.sleep(0.1)
    assert processes_in(run_dir) == []



def test_every_socket_ray_listens_on_is_the_loopback(cluster):
    out = subprocess.run(["ss", "-tlnH"], capture_output=True, text=True, check=True).stdout
    addresses = [line.split()[3].rsplit(":", 1)[0].strip("[]") for line in out.splitlines() if line.strip()]
    assert addresses, "Ray listens on nothing?"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        ip = getattr(ip, "ipv4_mapped", None) or ip  # [::ffff:127.0.0.1] is 127.0.0.1
        assert ip.is_loopback, f"a socket listens on {address}: {out}"
