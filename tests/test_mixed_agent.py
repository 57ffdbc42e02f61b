"""The mixed agent (cockpit.agents.mixed, ``--agent optuna+litellm``): which proposals
the LLM writes, what it is shown of the sampler's state, what of its proposals the
study is told, and a session through litellm against our loopback model."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import optuna
import pytest
from engine_support import LR_COMMENT, ScriptedAgent, fast_config, make_workspace, of_type, run_session, to

from cockpit.agents import make_agent
from cockpit.agents.mixed import MixedAgent, llm_turn
from cockpit.agents.sampler import SamplerAgent, storage_path
from cockpit.cli.agents import build_desk
from cockpit.events import RowLogged
from cockpit.store.agent_settings import AgentSettings, SettingsError
from cockpit.store.records import read_records

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def searched_fake() -> str:
    fake = (Path(__file__).parent / "fakes" / "train.py").read_text()
    fake = fake.replace("MATRIX_LR = 0.04  # Muon", "MATRIX_LR = 0.04  # search: log 0.01..0.32; Muon")
    fake = fake.replace("DEPTH = 4  # number", "DEPTH = 4  # search: off; number")
    return fake.replace("STEPS = 5  # progress", "STEPS = 5  # search: off; progress")


def load(path: Path, name: str) -> optuna.Study:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))


@pytest.mark.parametrize("share, turns", [(0.3, [3, 6, 9]), (0.5, [1, 3, 5, 7, 9]), (1.0, list(range(10))),
                                          (0.25, [3, 7])])
def test_the_llm_writes_its_share_evenly_spread(share, turns):
    assert [k for k in range(10) if llm_turn(k, share)] == turns


def test_settings_refuse_a_share_outside_0_to_1_and_the_mixed_agent_without_a_model(tmp_path):
    with pytest.raises(SettingsError, match="optuna\\+litellm needs a model"):
        AgentSettings(name="optuna+litellm").check()
    with pytest.raises(SettingsError, match="llm_share = 1.5"):
        AgentSettings(name="optuna+litellm", model="openai/m", llm_share=1.5).check()
    with pytest.raises(ValueError, match="llm_share must be above 0"):
        MixedAgent(SamplerAgent(tmp_path / "s.log", "t"), ScriptedAgent([]), 0.0)
    agent = make_agent("optuna+litellm", storage=tmp_path / "s.log", study_name="t", sampler="cmaes",
                       model="openai/m", api_base="http://127.0.0.1:9/v1", llm_share=0.5)
    assert (agent.share, agent.sampler.name, agent.llm.name) == (0.5, "optuna-cmaes", "openai/m")
    desk = build_desk(AgentSettings(name="optuna+litellm", model="openai/m", llm_share=0.4), 0,
                      make_workspace(tmp_path / "ws"), "t")
    assert desk.names == ("offline", "optuna", "litellm", "optuna+litellm") and desk.current.share == 0.4
    assert desk.agents["optuna"] is desk.current.sampler
    assert build_desk(AgentSettings(name="optuna"), 0, None, "t").names == ("offline", "optuna")


async def test_llm_proposals_see_the_study_and_are_told_only_as_far_as_they_move_searched_constants(tmp_path):
    ws = make_workspace(tmp_path / "ws", train_py=searched_fake())
    path = storage_path(ws.path, "t1")
    llm = ScriptedAgent([to("MATRIX_LR", "0.08", "search: log 0.01..0.32; " + LR_COMMENT, "the fake's best lr"),
                         to("DEPTH", "5", "search: off; number of layers (unused by the fake)", "deeper")])
    llm.name = "model-x"
    agent = MixedAgent(SamplerAgent(path, "t1", "tpe", seed=1), llm, share=0.5)
    reason, events = await run_session(ws, agent, fast_config("t1", max_experiments=5, pipeline=False))
    assert reason == "max-experiments"
    experiments = [r for r in read_records(ws.records_jsonl) if r.get("kind") == "experiment"]
    assert [r["agent"] for r in experiments[1:]] == ["optuna-tpe", "model-x", "optuna-tpe", "model-x"]
    assert [e.agent for e in of_type(events, RowLogged)][1:] == ["optuna-tpe", "model-x", "optuna-tpe", "model-x"]
    first, second = llm.contexts
    assert "## The sampler's state" in first.program_md and "MATRIX_LR" in first.program_md
    assert re.search(r"Best of \d+ finished trials", second.program_md)  # the sampler's trial, then the LLM's
    assert first.program_md.startswith("# program\nTry learning rates.")  # the person's program comes first
    told = [t for t in load(path, "t1").trials if t.user_attrs.get("llm")]
    lr_row = experiments[2]
    assert len(told) == 1 and told[0].params == {"MATRIX_LR": 0.08}
    assert told[0].value == pytest.approx(lr_row["val_bpb"]) and told[0].user_attrs["experiment"] == 2


@pytest.mark.slow
def test_a_session_through_litellm_against_the_loopback_model(tmp_path, monkeypatch):
    from loopback_model import LoopbackModel

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    ws = make_workspace(tmp_path / "ws", train_py=searched_fake())
    path = storage_path(ws.path, "t1")
    with LoopbackModel(delay_s=0.05) as model:
        agent = make_agent("optuna+litellm", seed=2, storage=path, study_name="t1", sampler="tpe",
                           model="openai/loopback", api_base=model.api_base, stream=False, llm_share=0.5)
        reason, _ = asyncio.run(run_session(ws, agent, fast_config("t1", max_experiments=7, pipeline=False)))
    assert reason == "max-experiments" and model.calls == 3  # proposals 2, 4, 6
    experiments = [r for r in read_records(ws.records_jsonl) if r.get("kind") == "experiment"][1:]
    by_llm = [r for r in experiments if r["agent"] == "openai/loopback"]
    assert len(by_llm) == 3 and all(r["agent_usage"] for r in by_llm)  # the LLM's tokens are counted
    told = {t.user_attrs["experiment"]: t for t in load(path, "t1").trials if t.user_attrs.get("llm")}
    for r in by_llm:
        moved = "MATRIX_LR" in r["description"]
        assert (r["experiment"] in told) is moved, r["description"]
        if moved:
            assert told[r["experiment"]].value == pytest.approx(r["val_bpb"])


def test_an_llm_row_marked_by_the_ratchet_is_still_told(tmp_path):
    from cockpit.agents.base import ProposalContext

    llm = ScriptedAgent([to("MATRIX_LR", "0.05", "search: log 0.01..0.32; " + LR_COMMENT, "a bit more lr")])
    agent = MixedAgent(SamplerAgent(tmp_path / "s.log", "t", "tpe"), llm, share=1.0)
    asyncio.run(agent.propose(ProposalContext(train_py=searched_fake(), program_md="p")))
    agent.observe(RowLogged(1, "abc1234", 1.05, 0.1, "discard", "a bit more lr [within noise]", 1.1))
    told = [t for t in load(tmp_path / "s.log", "t").trials if t.user_attrs.get("llm")]
    assert [(t.params, t.value) for t in told] == [({"MATRIX_LR": 0.05}, 1.05)]
    agent.observe(RowLogged(2, "abc1235", 1.0, 0.1, "discard", "a bit more lr [within noise]", 1.1))
    assert len([t for t in load(tmp_path / "s.log", "t").trials if t.user_attrs.get("llm")]) == 1  # told once
