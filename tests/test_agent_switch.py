"""Switching the session's agent live (cockpit.engine.agent_desk, SwitchAgent): from the
next proposal on, recorded per row, over the socket's wire format, by the cockpit's ``n``
key, and the agents the CLI offers."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from engine_support import ScriptedAgent, fast_config, lr, make_workspace, of_type, run_session

from cockpit.agents.offline import OfflineAgent
from cockpit.agents.sampler import SamplerAgent
from cockpit.cli.agents import build_desk
from cockpit.commands import Stop, SwitchAgent
from cockpit.engine.agent_desk import AgentDesk
from cockpit.events import AgentChanged, EngineMessage, RowLogged, RunStarted
from cockpit.serve.wire import decode_command, encode
from cockpit.store.records import read_records
from cockpit.store.settings import AgentSettings


class Named(ScriptedAgent):
    def __init__(self, name: str, replies: list) -> None:
        super().__init__(replies)
        self.name = name


def test_the_desk_switches_and_refuses_an_agent_it_has_not(tmp_path):
    first, second = Named("model-a", []), Named("model-b", [])
    desk = AgentDesk({"litellm": first, "offline": second}, "litellm")
    assert desk.current is first and desk.names == ("litellm", "offline")
    assert desk.switch("offline") is second and desk.chosen == "offline"
    with pytest.raises(ValueError, match="no agent 'optuna' in this session"):
        desk.switch("optuna")
    with pytest.raises(ValueError, match="not among"):
        AgentDesk({"offline": first}, "optuna")
    assert AgentDesk.of(first).names == ("model-a",)


async def test_a_switch_takes_effect_from_the_next_proposal_and_every_record_names_its_agent(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    # every move goes down from 0.04, away from the fake's best (0.08): all discards, so train.py
    # stays at 0.04 and each reply applies
    first = Named("model-a", [lr("0.04", "0.02"), lr("0.04", "0.03")])
    second = Named("model-b", [lr("0.04", "0.01"), lr("0.04", "0.015")])
    desk = AgentDesk({"litellm": first, "offline": second}, "litellm")

    def on_event(engine, event):
        if isinstance(event, RunStarted) and event.experiment == 1:  # sent while #1 trains
            engine.send(SwitchAgent("offline"))
            engine.send(SwitchAgent("optuna"))  # not in this session: a warning, the switch stands

    reason, events = await run_session(ws, desk, fast_config(max_experiments=4, pipeline=False), on_event)
    assert reason == "max-experiments"
    experiments = [r for r in read_records(ws.records_jsonl) if r.get("kind") == "experiment"]
    assert [r["agent"] for r in experiments] == ["model-a", "model-a", "model-b", "model-b"]  # baseline: the first
    changes = of_type(events, AgentChanged)
    assert [(c.name, c.agent, c.choices) for c in changes] == [
        ("litellm", "model-a", ["litellm", "offline"]), ("offline", "model-b", ["litellm", "offline"])]
    warnings = [e.text for e in of_type(events, EngineMessage) if e.level == "warning"]
    assert any("no agent 'optuna' in this session" in text for text in warnings)
    assert len(first.contexts) == 1 and len(second.contexts) == 2
    assert [e.agent for e in of_type(events, RowLogged)] == [None, "model-a", "model-b", "model-b"]  # the table's


async def test_rows_replayed_by_the_same_command_again_name_their_agent(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    first = Named("model-a", [lr("0.04", "0.02"), lr("0.04", "0.03"), lr("0.04", "0.025")])

    def on_event(engine, event):
        if isinstance(event, RowLogged) and event.experiment == 2:
            engine.send(Stop())

    _, before = await run_session(ws, AgentDesk.of(first), fast_config(max_experiments=9, pipeline=False), on_event)
    rows = len(of_type(before, RowLogged))
    again = Named("model-b", [lr("0.04", "0.011")])
    reason, events = await run_session(ws, AgentDesk.of(again), fast_config(max_experiments=rows + 1, resume=True))
    assert rows >= 3 and [e.agent for e in of_type(events, RowLogged)] == [None] + ["model-a"] * (rows - 1) + ["model-b"]


async def test_with_pipelining_the_proposal_asked_ahead_keeps_the_agent_that_wrote_it(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    first = Named("model-a", [lr("0.04", "0.02"), lr("0.04", "0.03"), lr("0.04", "0.025")])
    second = Named("model-b", [lr("0.04", "0.01"), lr("0.04", "0.015"), lr("0.04", "0.012")])
    desk = AgentDesk({"litellm": first, "offline": second}, "litellm")
    sent = []

    def on_event(engine, event):
        if isinstance(event, RowLogged) and event.experiment == 1 and not sent:
            sent.append(engine.send(SwitchAgent("offline")))

    await run_session(ws, desk, fast_config(max_experiments=5, pipeline=True, noise_runs=0), on_event)
    experiments = [r for r in read_records(ws.records_jsonl) if r.get("kind") == "experiment"]
    agents = [r["agent"] for r in experiments]
    assert agents[:2] == ["model-a", "model-a"] and agents[-1] == "model-b"
    assert agents == sorted(agents)  # one switch: never back to model-a


def test_switch_agent_travels_the_socket_as_a_command():
    assert decode_command(encode(SwitchAgent("optuna"))) == SwitchAgent("optuna")


def test_the_cli_offers_offline_and_optuna_always_and_litellm_when_a_model_is_set(tmp_path):
    ws = SimpleNamespace(path=tmp_path)
    desk = build_desk(AgentSettings(name="offline"), 0, ws, "t1")
    assert desk.names == ("offline", "optuna") and desk.chosen == "offline"
    assert isinstance(desk.agents["optuna"], SamplerAgent) and desk.agents["optuna"].study_name == "t1"
    desk = build_desk(AgentSettings(name="optuna", sampler="cmaes", model="openai/gpt-4o-mini"), 0, ws, "t1")
    assert desk.names == ("offline", "optuna", "litellm", "optuna+litellm") and desk.current.name == "optuna-cmaes"
    assert desk.agents["optuna+litellm"].sampler is desk.current  # one sampler for the study both ask
    assert isinstance(desk.agents["offline"], OfflineAgent) and desk.agents["litellm"].name == "openai/gpt-4o-mini"


async def test_the_n_key_sends_the_next_agent_of_the_session():
    from app_harness import Harness, until

    harness = Harness(hold_in_training=1)
    async with harness.app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: harness.engine.holding.is_set())
        await pilot.press("n")
        assert harness.engine.commands == []  # no AgentChanged yet: one agent only
        harness.engine.emit(AgentChanged("offline", "offline", ["offline", "optuna", "litellm"]))
        await pilot.pause()
        assert "offline" in harness.status()
        await pilot.press("n")
        assert harness.engine.commands == [SwitchAgent("optuna")]
        harness.engine.emit(AgentChanged("optuna", "optuna-tpe", ["offline", "optuna", "litellm"]))
        await pilot.pause()
        assert "optuna-tpe" in harness.status()
        await pilot.press("n")
        assert harness.engine.commands[-1] == SwitchAgent("litellm")
        harness.engine.release.set()
        await until(pilot, lambda: harness.engine.finished)
    await asyncio.sleep(0)


async def test_the_table_shows_each_rows_agent_when_it_is_wide_enough():
    from textual.app import App

    from cockpit.app.widgets import ResultsTable, TableRow
    from cockpit.row import Row

    rows = [TableRow(Row("a" * 7, 1.0, 0.1, "keep", "baseline", 0)),
            TableRow(Row("b" * 7, 0.9, 0.1, "keep", "TPE #1: LR 0.04 -> 0.05", 1), agent="optuna-cmaes")]

    class One(App):
        def compose(self):
            yield ResultsTable(rows)

    for width, shown in ((160, True), (80, False)):
        async with One().run_test(size=(width, 20)) as pilot:
            await pilot.pause()
            table = pilot.app.query_one(ResultsTable)
            labels = [str(c.label) for c in table.columns.values()]
            assert ("agent" in labels) is shown and labels[-1] == "description"
            cells = [c.plain for c in table.get_row_at(1)]
            assert ("optuna-cmae" in cells) is shown and cells[-1].startswith("TPE #1")
