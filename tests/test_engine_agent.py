"""The engine side of an LLM agent: fatal errors pause, program.md hot reload,
steering notes, program selection, token and cost accounting."""

from __future__ import annotations

import asyncio
import hashlib
from types import SimpleNamespace

import pytest
from engine_support import (DEPTH_COMMENT, FAKES, ScriptedAgent, fast_config, idea, lr, lr_to, make_workspace, of_type,
                            run_session, set_line)

from cockpit.agents.base import AgentFatal
from cockpit.commands import Resume, Steer, Stop
from cockpit.events import EngineMessage, PhaseChanged, ProposalRejected, RowLogged, RunStarted, SessionEnded
from cockpit.store.records import read_records
from cockpit.store.results import read_rows
from cockpit.store.repo import GitRepo


def _experiments(ws) -> list[dict]:
    """records.jsonl's experiments (not the noise floor's re-runs, nor a proposal asked ahead and set aside)."""
    return [r for r in read_records(ws.records_jsonl) if r["kind"] == "experiment"]


def _errors(events) -> list[str]:
    return [e.text for e in of_type(events, EngineMessage) if e.level == "error"]


@pytest.mark.parametrize("pipeline", [False, True], ids=["serial", "pipelined"])
async def test_agent_fatal_pauses_then_resume_asks_again(tmp_path, pipeline):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([AgentFatal("401: invalid API key"), lr("0.04", "0.08")])

    def on_event(engine, event):
        if event == PhaseChanged(1, "paused"):
            assert len(GitRepo(ws.path).log()) == 1  # nothing committed while paused
            asyncio.get_running_loop().call_later(0.1, engine.send, Resume())

    reason, events = await run_session(ws, agent, fast_config(max_experiments=2, pipeline=pipeline), on_event)
    assert reason == "max-experiments"
    assert any("401: invalid API key" in text and "paused" in text for text in _errors(events))
    phases = [e for e in of_type(events, PhaseChanged) if e.experiment == 1]
    # pipelined, the failed ask was the one made while the baseline trained
    assert [p.phase for p in phases[:3]] == (["paused", "proposing", "committing"] if pipeline
                                             else ["proposing", "paused", "proposing"])
    assert len(agent.contexts) == 2 and agent.contexts[1].experiment == 1
    assert [r.status for r in read_rows(ws.results_tsv)] == ["keep", "keep"]


async def test_stop_while_paused_by_agent_fatal_ends_cleanly(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    base = GitRepo(ws.path).head_commit()

    def on_event(engine, event):
        if event == PhaseChanged(1, "paused"):
            engine.send(Stop())

    agent = ScriptedAgent([AgentFatal("server down after 3 retries")])
    reason, events = await run_session(ws, agent, fast_config(), on_event)
    assert reason == "stopped" and events[-1] == SessionEnded("stopped", 1)
    assert len(read_rows(ws.results_tsv)) == 1 and GitRepo(ws.path).head_commit() == base


async def test_program_md_is_read_fresh_for_every_proposal(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    v2 = "# program v2\nTry deeper models.\n"

    def on_event(engine, event):
        if isinstance(event, RowLogged) and event.experiment == 1:
            ws.program_md.write_text(v2)

    agent = ScriptedAgent({1: lr("0.04", "0.08"), 2: lr_to("0.16")})  # by idea: see engine_support
    _, events = await run_session(ws, agent, fast_config(max_experiments=3), on_event)
    # pipelined, #2 asked while #1 trained read the old text and is asked again with the new
    second = [c for c in agent.contexts if idea(c) == 2]
    assert "Try learning rates" in agent.contexts[0].program_md and second[-1].program_md == v2
    assert EngineMessage("program.md changed: experiment 2 reads the new text") in events
    records = _experiments(ws)
    assert records[1]["program_sha256"] != records[2]["program_sha256"]
    assert records[2]["program_sha256"] == hashlib.sha256(v2.encode()).hexdigest()
    assert records[2]["program"] == "program.md"
    assert read_rows(ws.results_tsv)[2].status == "discard" and ws.program_md.read_text() == v2  # survives reset


@pytest.mark.parametrize("broken", ["missing", "empty"])
async def test_unreadable_program_pauses_with_a_message(tmp_path, broken):
    ws = make_workspace(tmp_path / "ws")
    if broken == "missing":
        ws.program_md.unlink()
    else:
        ws.program_md.write_text("  \n")

    def on_event(engine, event):
        if isinstance(event, PhaseChanged) and event.phase == "paused":
            ws.program_md.write_text("# fixed\n")
            engine.send(Resume())

    agent = ScriptedAgent([lr("0.04", "0.08")])
    reason, events = await run_session(ws, agent, fast_config(max_experiments=2), on_event)
    assert reason == "max-experiments"
    assert [text for text in _errors(events)] == [
        f"cannot read the program: program.md is {broken}"
        + ("; create it (the agent's instructions)" if broken == "missing"
           else "; write the agent's instructions into it") + "; paused: fix it, then resume"]
    assert [c.program_md for c in agent.contexts] == ["# fixed\n"]


async def test_steering_notes_reach_the_next_contexts(tmp_path):
    ws = make_workspace(tmp_path / "ws")

    started = []

    def on_event(engine, event):
        if isinstance(event, RunStarted) and not started:  # the baseline's run, not its noise re-runs
            engine.send(Steer("try a lower learning rate"))
            engine.send(Steer("   "))
        if isinstance(event, RunStarted) and event.experiment == 1:
            engine.send(Steer("then try depth"))
        started.append(event) if isinstance(event, RunStarted) else None

    agent = ScriptedAgent({1: lr("0.04", "0.08"), 2: lr_to("0.16")})  # by idea: see engine_support
    _, events = await run_session(ws, agent, fast_config(max_experiments=3), on_event)
    # the ask each proposal was made from (pipelined, one asked before a note came is asked again)
    used = {idea(c): c for c in agent.contexts}
    assert [used[i].steering for i in (1, 2)] == [
        ("try a lower learning rate",), ("try a lower learning rate", "then try depth")]
    echoed = [e.text for e in of_type(events, EngineMessage) if "steering" in e.text]
    assert len(echoed) == 2 and echoed[0].endswith(": try a lower learning rate")
    records = read_records(ws.records_jsonl)
    experiments = [r for r in records if r["kind"] == "experiment"]
    assert experiments[1]["steering"] == ["try a lower learning rate"]
    notes = [r for r in records if r["kind"] == "action"]  # each note recorded as it came
    assert [(r["action"], r["detail"], r["experiment"]) for r in notes] == [
        ("steer", "try a lower learning rate", 0), ("steer", "then try depth", 1)]


async def test_shipped_program_by_name_and_unknown_name(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([lr("0.04", "0.08")])
    await run_session(ws, agent, fast_config(max_experiments=2, program="hyperparameters"))
    assert "hyper-parameters only" in agent.contexts[0].program_md
    assert _experiments(ws)[1]["program"] == "programs/hyperparameters.md"

    reason, _ = await run_session(ws, ScriptedAgent([]), fast_config(tag="t2", program="nosuch"))
    assert reason.startswith("error: unknown program 'nosuch'; shipped: default, hyperparameters")
    assert not GitRepo(ws.path).branch_exists("autoresearch/t2")


async def test_agent_usage_is_recorded_and_summed(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    usages = [
        {"prompt_tokens": 100, "completion_tokens": 20, "cost_usd": 0.001, "latency_s": 1.5, "retries": 0},
        SimpleNamespace(prompt_tokens=200, completion_tokens=30, cost_usd=None, latency_s=0.5, retries=1),
        {"prompt_tokens": 50, "completion_tokens": 5, "cost_usd": 0.002, "latency_s": 1.0, "retries": 0},
    ]
    # #2 edits another line than #1: pipelined, it is re-applied onto the keep of #1, not asked again
    agent = ScriptedAgent(["no edit here", lr("0.04", "0.08"), set_line("DEPTH", "4", "5", DEPTH_COMMENT)],
                          usages=usages)
    _, events = await run_session(ws, agent, fast_config(max_experiments=3))

    records = _experiments(ws)
    assert records[0]["agent_usage"] is None
    assert records[1]["agent_usage"] == {"prompt_tokens": 300, "completion_tokens": 50, "cost_usd": 0.001,
                                         "latency_s": 2.0, "retries": 1, "calls": 2}
    assert [e.agent_usage["calls"] if e.agent_usage else 0 for e in of_type(events, RowLogged)] == [0, 2, 1]
    total = of_type(events, SessionEnded)[0].agent_usage
    assert (total["prompt_tokens"], total["completion_tokens"], total["calls"]) == (350, 55, 3)
    assert total["cost_usd"] == pytest.approx(0.003)


async def test_seed_only_proposal_is_refused_and_the_agent_asked_again(tmp_path):
    source = (FAKES / "train.py").read_text()
    anchor = "STEPS = 5  # progress lines printed\n"
    ws = make_workspace(tmp_path / "ws", source.replace(anchor, anchor + "SEED = 42  # random seed\n"))
    agent = ScriptedAgent([set_line("SEED", "42", "137", "random seed"), lr("0.04", "0.08")])
    _, events = await run_session(ws, agent, fast_config(max_experiments=2))

    rejected = of_type(events, ProposalRejected)
    assert [(r.experiment, r.attempt) for r in rejected] == [(1, 1)]
    assert rejected[0].reason.startswith("refused: the edit changes only random seeds (SEED 42 -> 137); "
                                         "a seed change measures noise, not an idea.")
    assert [(c.attempt, c.last_error) for c in agent.contexts] == [(0, None), (1, rejected[0].reason)]
    assert [r.experiment for r in of_type(events, RunStarted) if r.experiment] == [1]  # no run spent on the seed
    rows = read_rows(ws.results_tsv)
    assert [(r.status, r.description) for r in rows][1:] == [("keep", "MATRIX_LR 0.04 -> 0.08")]
    assert len(rows) == 2 and len(GitRepo(ws.path).log()) == 2
    assert _experiments(ws)[1]["errors"] == [rejected[0].reason]
    assert "SEED = 42" in ws.train_py.read_text() and "MATRIX_LR = 0.08" in ws.train_py.read_text()
