"""Pipelined proposals (cockpit.engine.pipeline): the next proposal is asked while a run
trains; real git, the fake train.py, scripted agents."""

from __future__ import annotations

import asyncio
import hashlib

from engine_support import (DEPTH_COMMENT, ScriptedAgent, fast_config, lr, make_workspace, mode, run_session,
                            set_line)

from cockpit.commands import AcceptProgram, Approve, DropQueued, Steer, Stop

from cockpit.events import PhaseChanged, ProposalQueued, RunStarted, StepLogged, TimeAccounted
from cockpit.store.records import read_records
from cockpit.store.results import read_rows


def depth(old: str, new: str) -> str:
    return set_line("DEPTH", old, new, DEPTH_COMMENT)


def piped(**overrides):
    return fast_config(pipeline=True, **overrides)


def experiments(ws) -> list[dict]:
    return [r for r in read_records(ws.records_jsonl) if r.get("kind") == "experiment"]


async def test_next_proposal_is_asked_while_the_run_trains(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    base = ws.train_py.read_text()
    agent = ScriptedAgent([lr("0.04", "0.02"), depth("4", "6")])
    reason, events = await run_session(ws, agent, piped(max_experiments=3))
    assert reason == "max-experiments"
    # both asks happened against the baseline's train.py, each while a run trained
    assert [c.in_flight for c in agent.contexts] == [("baseline",), ("MATRIX_LR 0.04 -> 0.02",)]
    assert all(c.train_py == base for c in agent.contexts)
    queued = [e for e in events if isinstance(e, ProposalQueued)]
    assert [(q.experiment, q.running) for q in queued] == [(1, 0), (2, 1)]
    assert not any(q.awaiting_approval for q in queued)  # the gate is off
    started = set()  # each experiment's run, not the noise floor's re-runs of the baseline
    order = [type(e).__name__ for e in events if isinstance(e, ProposalQueued) or (
        isinstance(e, RunStarted) and e.experiment not in started and not started.add(e.experiment))]
    assert order == ["RunStarted", "ProposalQueued", "RunStarted", "ProposalQueued", "RunStarted"]
    rows = read_rows(ws.results_tsv)
    assert [r.status for r in rows] == ["keep", "discard", "discard"]
    second = experiments(ws)[2]
    assert second["queued"] == {"asked_during": 1, "base": rows[0].commit, "rebased": False,
                                "approved_ahead": False}
    assert "DEPTH = 4" in ws.train_py.read_text() and "MATRIX_LR = 0.04" in ws.train_py.read_text()
    # no ask beyond the last experiment
    assert len(agent.contexts) == 2


async def test_a_keep_rebases_the_queued_proposal_onto_the_new_best(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([lr("0.04", "0.08"), depth("4", "6")])
    await run_session(ws, agent, piped(max_experiments=3))
    rows = read_rows(ws.results_tsv)
    assert [r.status for r in rows][:2] == ["keep", "keep"]
    record = experiments(ws)[2]
    assert record["queued"]["rebased"] is True and record["parent"] == rows[1].commit
    # the committed train.py holds the kept change and the queued one
    assert "+DEPTH = 6" in record["diff"] and "+MATRIX_LR" not in record["diff"]
    # the committed train.py of #2 holds both changes, whatever was kept after it
    committed = [line for line in record["diff"].splitlines() if line.startswith(" MATRIX_LR")]
    assert committed and "MATRIX_LR = 0.08" in committed[0]  # the kept change, as diff context
    assert ("DEPTH = 6" in ws.train_py.read_text()) == (rows[2].status == "keep")


async def test_a_queued_proposal_that_no_longer_applies_is_superseded_and_asked_again(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    # the second reply edits the line the first (kept) one changes
    agent = ScriptedAgent([lr("0.04", "0.08"), lr("0.04", "0.02"), lr("0.08", "0.16")])
    await run_session(ws, agent, piped(max_experiments=3))
    records = read_records(ws.records_jsonl)
    superseded = [r for r in records if r.get("kind") == "superseded"]
    assert len(superseded) == 1 and "no longer applies" in superseded[0]["reason"]
    assert superseded[0]["description"] == "MATRIX_LR 0.04 -> 0.02" and "+MATRIX_LR = 0.02" in superseded[0]["diff"]
    assert [r.description for r in read_rows(ws.results_tsv)] == [
        "baseline", "MATRIX_LR 0.04 -> 0.08", "MATRIX_LR 0.08 -> 0.16"]
    assert agent.contexts[2].in_flight == () and "MATRIX_LR = 0.08" in agent.contexts[2].train_py
    third = experiments(ws)[2]
    assert third["queued"] == {}  # asked after the keep, not ahead


async def test_a_steering_note_after_the_ask_supersedes_it(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([lr("0.04", "0.02"), depth("4", "6"), depth("4", "8")])
    sent = []

    def steer(engine, event):
        if isinstance(event, StepLogged) and event.experiment == 1 and not sent:
            sent.append(True)
            engine.send(Steer("try depth 8"))

    await run_session(ws, agent, piped(max_experiments=3), steer)
    superseded = [r for r in read_records(ws.records_jsonl) if r.get("kind") == "superseded"]
    assert [s["description"] for s in superseded] == ["DEPTH 4 -> 6"]
    assert "steering" in superseded[0]["reason"]
    assert agent.contexts[2].steering == ("try depth 8",)
    assert read_rows(ws.results_tsv)[2].description == "DEPTH 4 -> 8"


async def test_a_program_change_confirmed_after_the_ask_supersedes_it(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([lr("0.04", "0.02"), depth("4", "6"), depth("4", "8")])
    new_program = "# program\nTry deeper models.\n"
    done = []

    def edit(engine, event):
        if isinstance(event, ProposalQueued) and event.experiment == 2 and not done:
            done.append(True)  # #2 was asked ahead with the old text; the human now edits and saves
            ws.program_md.write_text(new_program)
            engine.send(AcceptProgram(hashlib.sha256(new_program.encode()).hexdigest()))

    await run_session(ws, agent, piped(max_experiments=3), edit)
    superseded = [r for r in read_records(ws.records_jsonl) if r.get("kind") == "superseded"]
    assert [s["description"] for s in superseded] == ["DEPTH 4 -> 6"]
    assert superseded[0]["reason"] == "program.md changed after it was asked"
    assert agent.contexts[1].program_md != new_program and agent.contexts[2].program_md == new_program
    assert read_rows(ws.results_tsv)[2].description == "DEPTH 4 -> 8"


async def test_fix_attempts_come_before_the_queued_proposal(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([mode("crash"), depth("4", "6")], fixes=[mode("ok", old='"crash"')])
    await run_session(ws, agent, piped(max_experiments=4))
    assert [c.fix_attempt for c in agent.contexts] == [0, 0, 1]
    rows = read_rows(ws.results_tsv)
    assert [r.description for r in rows] == ["baseline", "mode crash", "mode crash (fix 1/2: mode ok)",
                                             "DEPTH 4 -> 6"]
    assert rows[1].status == "crash"


async def test_approve_ahead_trains_without_waiting_and_drop_asks_again(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([lr("0.04", "0.02"), depth("4", "6"), depth("4", "8")])
    seen: list = []

    def decide(engine, event):
        if isinstance(event, ProposalQueued):
            seen.append(event)  # (checked after the session: a failed assert here would only stall it)
            engine.send(DropQueued() if event.description == "DEPTH 4 -> 6" else Approve())

    reason, events = await run_session(ws, agent, piped(max_experiments=3, approval_gate=True, budget_s=1.0),
                                       decide)
    assert reason == "max-experiments"
    assert [e.description for e in seen] == ["MATRIX_LR 0.04 -> 0.02", "DEPTH 4 -> 6", "DEPTH 4 -> 8"]
    assert all(e.awaiting_approval for e in seen)  # the gate is on: each waited for a decision
    assert not [e for e in events if isinstance(e, PhaseChanged) and e.phase == "awaiting-approval"]
    records = read_records(ws.records_jsonl)
    vetoed = [r for r in records if r.get("kind") == "vetoed"]
    assert [v["description"] for v in vetoed] == ["DEPTH 4 -> 6"] and vetoed[0]["commit"] == ""
    actions = [r["action"] for r in records if r.get("kind") == "action"]
    assert actions == ["approve", "drop-queued", "approve"]
    assert agent.contexts[2].vetoed == ("DEPTH 4 -> 6",)
    assert [r.description for r in read_rows(ws.results_tsv)] == ["baseline", "MATRIX_LR 0.04 -> 0.02",
                                                                  "DEPTH 4 -> 8"]
    assert experiments(ws)[2]["queued"]["approved_ahead"] is True


async def test_undecided_queued_proposal_waits_at_the_gate_after_its_commit(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([lr("0.04", "0.02")])

    def approve_at_gate(engine, event):
        if isinstance(event, PhaseChanged) and event.phase == "awaiting-approval":
            engine.send(Approve())

    reason, events = await run_session(ws, agent, piped(max_experiments=2, approval_gate=True), approve_at_gate)
    assert [e.experiment for e in events if isinstance(e, PhaseChanged) and e.phase == "awaiting-approval"] == [1]
    assert experiments(ws)[1]["timings"]["wait_human_s"] > 0


async def test_stop_records_a_finished_queued_proposal(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([lr("0.04", "0.02"), depth("4", "6")])

    def stop(engine, event):
        if isinstance(event, ProposalQueued) and event.running == 1:
            engine.send(Stop())

    reason, _ = await run_session(ws, agent, piped(budget_s=1.0), stop)
    assert reason == "stopped"
    superseded = [r for r in read_records(ws.records_jsonl) if r.get("kind") == "superseded"]
    assert [s["description"] for s in superseded] == ["DEPTH 4 -> 6"]
    assert "session ended" in superseded[0]["reason"]


class SlowAgent(ScriptedAgent):
    """A scripted agent that thinks ``delay_s`` seconds per reply."""

    def __init__(self, replies, delay_s: float) -> None:
        super().__init__(replies)
        self.delay_s = delay_s

    async def propose(self, context):
        await asyncio.sleep(self.delay_s)
        return await super().propose(context)


async def test_the_model_time_is_hidden_behind_training(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.3")  # each run trains 1.5 s; the model thinks 0.6 s
    replies = [lr("0.04", "0.02"), depth("4", "6"), depth("4", "3")]
    waits = {}
    for pipeline in (False, True):
        ws = make_workspace(tmp_path / f"ws-{pipeline}")
        _, events = await run_session(ws, SlowAgent(list(replies), 0.6),
                                      fast_config(pipeline=pipeline, max_experiments=4, budget_s=1.2))
        accounts = [e for e in events if isinstance(e, TimeAccounted)]
        assert [a.experiment for a in accounts] == [0, 1, 2, 3]
        waits[pipeline] = [a.timings["wait_model_s"] for a in accounts[1:]]
        assert all(a.timings["propose_s"] >= 0.55 for a in accounts[1:])
        session = accounts[-1].session
        assert session["experiments"] == 4 and session["ideal_per_hour"] == 3600 / 1.2
        assert abs(session["wait_model_s"] - sum(waits[pipeline])) < 1e-6
    assert all(w >= 0.55 for w in waits[False])
    assert all(w < 0.3 for w in waits[True]), waits
