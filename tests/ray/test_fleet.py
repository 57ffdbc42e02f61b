"""cockpit.engine.fleet on a real local Ray with 4 logical GPUs: one session, four runs in
flight, one ledger. The offline agent proposes, bench/fixed_run.py trains (fixed length,
val_bpb from its hyper-parameters). Checked on the files a user reads: one row per
experiment, every number accounted for, the ratchet invariant (each keep's parent is the
keep before it and it beat it; the branch is the line of keeps), no train.py trained
twice, each record naming its worker, node and GPU."""

import asyncio
import json
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from cockpit.agents.offline import OfflineAgent  # noqa: E402
from cockpit.commands import Stop, Veto  # noqa: E402
from cockpit.events import RowLogged, TimeAccounted, WorkerUpdated  # noqa: E402
from cockpit.engine.fleet import FleetEngine  # noqa: E402
from cockpit.engine.fleet_slots import ray_fleet  # noqa: E402
from cockpit.engine.session import SessionConfig  # noqa: E402
from cockpit.rules.gpus import GpuSpec  # noqa: E402
from cockpit.store.records import read_records  # noqa: E402
from cockpit.store.results import read_rows  # noqa: E402
from cockpit.store.settings import Settings  # noqa: E402
from cockpit.training import ray_slots  # noqa: E402
from engine_support import make_workspace  # noqa: E402
from fleet_checks import check_ledger  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Four GPU slots on a local Ray with 4 logical GPUs, stopped at the end."""
    mp = pytest.MonkeyPatch()
    mp.setenv(ray_slots.LOGICAL_GPUS_ENV, "4")
    mp.setenv(ray_slots.RUN_ROOT_ENV, str(tmp_path_factory.mktemp("runs")))
    mp.delenv("RAY_ADDRESS", raising=False)
    slots = ray_fleet(GpuSpec(4))
    yield slots
    ray_slots.stop_ray()
    mp.undo()


def fixed_workspace(root: Path):
    return make_workspace(root, train_py=(ROOT / "bench" / "fixed_run.py").read_text())


def test_a_fleet_session_keeps_one_honest_ledger(fleet, tmp_path):
    ws = fixed_workspace(tmp_path / "ws")
    events: list = []
    config = SessionConfig(tag="fleet", max_experiments=14, hard_limit_grace_s=20, kill_grace_s=1,
                           settings=Settings(budget_s=1.0, noise_runs=3))
    engine = FleetEngine(ws, config, OfflineAgent(), events.append, fleet)
    reason = asyncio.run(asyncio.wait_for(engine.run(), timeout=240))
    assert reason in ("max-experiments", "agent-exhausted")
    experiments = check_ledger(ws, "fleet")
    rows = read_rows(ws.results_tsv)
    assert len(rows) >= 8
    assert {r["worker"] for r in experiments} == {"gpu0", "gpu1", "gpu2", "gpu3"}  # every GPU trained
    assert all(r["node"] and r["gpu"] != "" for r in experiments)
    records = read_records(ws.records_jsonl)
    floor = [r for r in records if r["kind"] == "noise-floor"]
    assert len(floor) == 1 and len(floor[0]["runs"]) == 4  # the baseline on every GPU
    fleet = [r for r in records if r["kind"] == "fleet"]
    assert len(fleet) == 1 and fleet[0]["duplicates_refused"] == 0 and len(fleet[0]["workers"]) == 4
    keeps = [r for r in experiments if r["status"] == "keep"]
    stale = [r for r in experiments if r["description"].endswith("[stale]")]
    updates = [e for e in events if isinstance(e, WorkerUpdated)]  # the cockpit's workers strip
    assert {e.worker for e in updates} == {"gpu0", "gpu1", "gpu2", "gpu3"}
    assert {"baseline", "training", "done"} <= {e.phase for e in updates}
    assert all(e.worker for e in events if isinstance(e, RowLogged))
    assert [e for e in events if isinstance(e, TimeAccounted)][-1].session["workers"] == 4
    figures = engine.figures()
    assert figures["rows"] == len(rows) and len(figures["idle_share"]) == 4
    print(json.dumps({"rows": len(rows), "keeps": len(keeps), "stale": len(stale),
                      "rebased": sum("[rebased]" in r["description"] for r in experiments), **figures}))


def test_stop_ends_every_run_in_flight_with_its_row(fleet, tmp_path):
    ws = fixed_workspace(tmp_path / "ws")
    config = SessionConfig(tag="stop", max_experiments=40, hard_limit_grace_s=20, kill_grace_s=1,
                           settings=Settings(budget_s=6.0, noise_runs=0))
    engine = FleetEngine(ws, config, OfflineAgent(), lambda event: None, fleet)

    async def session() -> str:
        task = asyncio.ensure_future(engine.run())
        while len(engine.flying) < 4:
            await asyncio.sleep(0.1)
        vetoed = min(engine.flying)
        engine.send(Veto(vetoed))  # the cockpit's veto of the selected worker's run
        while not any(r.get("status") for r in read_records(ws.records_jsonl)
                      if r["kind"] == "experiment" and r["experiment"] == vetoed):
            await asyncio.sleep(0.1)
        engine.send(Stop())
        return await asyncio.wait_for(task, timeout=60)

    assert asyncio.run(asyncio.wait_for(session(), timeout=120)) == "stopped"
    records = [r for r in read_records(ws.records_jsonl) if r["kind"] == "experiment"]
    rows = read_rows(ws.results_tsv)
    vetoed = [r for r in records if r["description"].endswith("[vetoed]")]
    assert len(vetoed) == 1 and vetoed[0]["status"] == "discard"  # ended as a discard, its row written
    assert any(r["kind"] == "action" and r["action"] == "veto" for r in read_records(ws.records_jsonl))
    assert len(rows) == len(records) >= 5  # the baseline, the vetoed run, and every other run stopped
    assert sum(r["stopped"] for r in records) >= 3 and engine.runs == {}
