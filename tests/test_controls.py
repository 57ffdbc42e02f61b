"""The human controls on a real engine: approval gate, approve, veto (at the gate
and while training), force-keep (while training and after a discard), revert
of the last keep, the records of every action, and the CLI's --approve."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest
from engine_support import (FAKES, ScriptedAgent, after, fast_config, lr, lr_to, make_workspace, mode, of_type,
                            process_alive, run_session)

from cockpit.agents.offline import OfflineAgent
from cockpit.cli import main
from cockpit.commands import Approve, ForceKeep, Pause, Resume, RevertLastKeep, SetApprovalGate, Stop, Veto
from cockpit.events import (ActionApplied, EngineMessage, PhaseChanged, RowLogged, RunStarted, SessionStarted,
                            StepLogged)
from cockpit.store.records import read_records
from cockpit.store.results import read_rows
from cockpit.store.repo import GitRepo, short

GATED = {"approval_gate": True}


def _kind(ws, kind: str) -> list[dict]:
    return [r for r in read_records(ws.records_jsonl) if r["kind"] == kind]


def _actions(ws) -> list[tuple[str, int]]:
    return [(r["action"], r["experiment"]) for r in _kind(ws, "action")]


def _warnings(events) -> list[str]:
    return [e.text for e in of_type(events, EngineMessage) if e.level == "warning"]


def _rows(ws) -> list[tuple[str, str]]:
    return [(r.status, r.description) for r in read_rows(ws.results_tsv)]


def _messages(ws) -> list[str]:
    return [m for _, m in GitRepo(ws.path).log()]


def _trained(events) -> list[int]:
    """The experiments whose run started (not the noise floor's re-runs of the baseline)."""
    return [e.experiment for e in of_type(events, RunStarted) if e.experiment]


def _later(engine, command, delay: float = 0.05) -> None:
    asyncio.get_running_loop().call_later(delay, engine.send, command)


@pytest.mark.parametrize("pipeline", [False, True], ids=["serial", "pipelined"])
async def test_the_gate_holds_a_proposal_until_approve(tmp_path, pipeline):
    ws = make_workspace(tmp_path / "ws")
    seen = {}

    def on_event(engine, event):
        if event == PhaseChanged(1, "awaiting-approval"):
            seen["head"] = _messages(ws)[0]
            _later(engine, Approve(), 0.2)

    agent = ScriptedAgent([lr("0.04", "0.08")])
    reason, events = await run_session(ws, agent, fast_config(max_experiments=2, pipeline=pipeline, **GATED),
                                       on_event)
    assert reason == "max-experiments" and of_type(events, SessionStarted)[0].approval_gate is True
    assert seen["head"] == "MATRIX_LR 0.04 -> 0.08"  # committed, then held
    phases = [e.phase for e in of_type(events, PhaseChanged) if e.experiment == 1]
    # pipelined, #1 was asked (and offered at the gate) while the baseline trained: no "proposing"
    assert phases == ["proposing"] * (not pipeline) + ["committing", "awaiting-approval", "training", "deciding"]
    waited = events.index(PhaseChanged(1, "awaiting-approval"))
    approved = next(i for i, e in enumerate(events) if isinstance(e, ActionApplied) and e.action == "approve")
    started = next(i for i, e in enumerate(events) if isinstance(e, RunStarted) and e.experiment == 1)
    assert waited < approved < started
    assert _rows(ws) == [("keep", "baseline"), ("keep", "MATRIX_LR 0.04 -> 0.08")]
    assert _actions(ws) == [("approve", 1)]


async def test_veto_at_the_gate_drops_the_proposal_without_a_row(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    base = GitRepo(ws.path).head_commit()
    seen = []

    def on_event(engine, event):
        if isinstance(event, PhaseChanged) and event.phase == "awaiting-approval":
            seen.append((_messages(ws), "MATRIX_LR = 0.04" in ws.train_py.read_text()))
            engine.send(Veto() if len(seen) == 1 else Approve())

    agent = ScriptedAgent([lr("0.04", "0.08"), lr("0.04", "0.16")])
    reason, events = await run_session(ws, agent, fast_config(max_experiments=2, **GATED), on_event)
    assert reason == "max-experiments"
    assert seen[1] == (["MATRIX_LR 0.04 -> 0.16", "workspace"], False)  # the vetoed commit is gone
    assert _trained(events) == [1]  # the vetoed one never trained
    assert _rows(ws) == [("keep", "baseline"), ("discard", "MATRIX_LR 0.04 -> 0.16")]
    vetoed = _kind(ws, "vetoed")
    assert len(vetoed) == 1 and vetoed[0]["status"] == "vetoed" and vetoed[0]["experiment"] == 1
    assert "+MATRIX_LR = 0.08" in vetoed[0]["diff"] and vetoed[0]["parent"] == short(base)
    assert vetoed[0]["commit"] not in [r.commit for r in read_rows(ws.results_tsv)]
    assert agent.contexts[1].vetoed == ("MATRIX_LR 0.04 -> 0.08",)  # the agent is told
    assert _actions(ws) == [("veto", 1), ("approve", 1)]
    assert GitRepo(ws.path).head_commit() == base and "MATRIX_LR = 0.04" in ws.train_py.read_text()


async def test_the_offline_agent_does_not_propose_a_vetoed_move_again(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    proposed = []

    def on_event(engine, event):
        if isinstance(event, PhaseChanged) and event.phase == "awaiting-approval":
            proposed.append(_messages(ws)[0])
            engine.send(Veto() if len(proposed) == 1 else Stop())

    reason, _ = await run_session(ws, OfflineAgent(), fast_config(**GATED), on_event)
    assert reason == "stopped" and len(proposed) == 2 and proposed[0] != proposed[1]
    assert [r["reason"] for r in _kind(ws, "withdrawn")] == ["the session stopped before it was approved"]
    assert len(_messages(ws)) == 1 and len(read_rows(ws.results_tsv)) == 1


def _pid_writing_fake() -> str:
    """The fake train.py whose hang_child mode writes its and its grandchild's pid to logs/pids."""
    source = (FAKES / "train.py").read_text()
    spawn = '    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])\n'
    assert spawn in source
    return source.replace(spawn, spawn.replace("    subprocess", "    _child = subprocess") +
                          '    open("logs/pids", "w").write(f"{os.getpid()} {_child.pid}")\n')


@pytest.mark.parametrize("pipeline", [False, True], ids=["serial", "pipelined"])
async def test_veto_while_training_kills_the_group_and_logs_a_discard(tmp_path, pipeline):
    ws = make_workspace(tmp_path / "ws", train_py=_pid_writing_fake())
    base = GitRepo(ws.path).head_commit()

    def on_event(engine, event):
        if isinstance(event, StepLogged) and event.experiment == 1 and event.step == 0:
            engine.send(Veto())

    agent = ScriptedAgent([mode("hang_child"), lr("0.04", "0.08")])
    started = time.monotonic()
    reason, events = await run_session(ws, agent, fast_config(max_experiments=3, budget_s=30.0, pipeline=pipeline),
                                       on_event)
    assert reason == "max-experiments" and time.monotonic() - started < 15
    assert _rows(ws) == [("keep", "baseline"), ("discard", "mode hang_child [vetoed]"),
                         ("keep", "MATRIX_LR 0.04 -> 0.08")]
    pids = [int(p) for p in (ws.path / "logs" / "pids").read_text().split()]
    assert not any(process_alive(pid) for pid in pids)  # the whole process group
    assert [c.fix_attempt for c in agent.contexts] == [0, 0]  # a veto is no crash to fix
    second = agent.contexts[1]
    assert 'MODE = "ok"' in second.train_py
    if pipeline:  # asked while the vetoed run trained
        assert second.in_flight == ("mode hang_child",) and len(second.history) == 1
    else:
        assert second.history[1].status == "discard"
    experiment = _kind(ws, "experiment")[1]
    assert experiment["status"] == "discard" and experiment["stopped"] is False and experiment["val_bpb"] is None
    assert _actions(ws) == [("veto", 1)] and _kind(ws, "action")[0]["commit"] == read_rows(ws.results_tsv)[1].commit
    assert _messages(ws)[1:] == ["workspace"] and GitRepo(ws.path).log()[1][0] == base


async def test_force_keep_while_training_keeps_a_worse_run_as_the_reference(tmp_path):
    ws = make_workspace(tmp_path / "ws", toml='profile = "tiny"\nfix_attempts = 0\n')

    def on_event(engine, event):
        if isinstance(event, RunStarted) and event.experiment in (1, 3):
            engine.send(ForceKeep())

    agent = ScriptedAgent({1: lr("0.04", "0.02"), 2: lr_to("0.03"), 3: mode("crash")})  # by idea: see engine_support
    reason, events = await run_session(ws, agent, fast_config(max_experiments=4), on_event)
    assert reason == "max-experiments"
    assert _rows(ws) == [("keep", "baseline"), ("keep", "MATRIX_LR 0.04 -> 0.02 [forced]"),
                         ("keep", "MATRIX_LR 0.02 -> 0.03"), ("crash", "mode crash")]
    rows = of_type(events, RowLogged)
    assert [r.val_bpb for r in rows[:3]] == [1.1, 1.2, pytest.approx(1.1415, abs=1e-4)]
    assert [r.best_val_bpb for r in rows] == [1.1, 1.2, rows[2].val_bpb, rows[2].val_bpb]  # 1.14 beat the forced 1.2
    assert any("force-keep: the run crashed" in w for w in _warnings(events))
    assert _messages(ws) == ["MATRIX_LR 0.02 -> 0.03", "MATRIX_LR 0.04 -> 0.02", "workspace"]
    assert _actions(ws) == [("force-keep", 1), ("force-keep", 3)]


@pytest.mark.parametrize("pipeline", [False, True], ids=["serial", "pipelined"])
async def test_force_keep_after_a_discard_moves_the_branch_to_it(tmp_path, pipeline):
    """Forced while the engine waits on the agent for #2: serial, that ask is cancelled;
    pipelined (#2 asked while #1 trained), it answers late and no longer applies."""
    ws = make_workspace(tmp_path / "ws")
    forced = asyncio.Event()

    def on_event(engine, event):
        if event == PhaseChanged(2, "proposing"):
            _later(engine, ForceKeep())
        if isinstance(event, ActionApplied) and event.action == "force-keep":
            forced.set()

    agent = ScriptedAgent({1: lr("0.04", "0.16"), 2: after(forced, lr("0.04", "0.02")),  # in flight when forced
                           3: lr("0.16", "0.08")})
    reason, events = await run_session(ws, agent, fast_config(max_experiments=4, pipeline=pipeline), on_event)
    assert reason == "max-experiments"
    assert _rows(ws) == [("keep", "baseline"), ("discard", "MATRIX_LR 0.04 -> 0.16"),
                         ("keep", "MATRIX_LR 0.04 -> 0.16 [forced keep of #1]"), ("keep", "MATRIX_LR 0.16 -> 0.08")]
    rows = read_rows(ws.results_tsv)
    assert rows[2].commit == rows[1].commit and rows[2].val_bpb == rows[1].val_bpb == 1.1
    assert _messages(ws) == ["MATRIX_LR 0.16 -> 0.08", "MATRIX_LR 0.04 -> 0.16", "workspace"]
    asked = agent.contexts[-1]  # asked again from the forced commit
    assert asked.experiment == 3 and "MATRIX_LR = 0.16" in asked.train_py
    assert any("+MATRIX_LR = 0.16" in d for d in asked.kept_diffs)
    assert _trained(events) == [1, 3]
    assert _actions(ws) == [("force-keep", 2)] and _kind(ws, "action")[0]["commit"] == rows[1].commit
    set_aside = [r["description"] for r in _kind(ws, "superseded")]
    assert set_aside == (["MATRIX_LR 0.04 -> 0.02"] if pipeline else [])


async def test_force_keep_at_the_gate_withdraws_the_waiting_proposal(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    waits = []

    def on_event(engine, event):
        if isinstance(event, PhaseChanged) and event.phase == "awaiting-approval":
            waits.append(event.experiment)
            engine.send(ForceKeep() if event.experiment == 2 else Approve())

    agent = ScriptedAgent([lr("0.04", "0.16"), lr("0.04", "0.02"), lr("0.16", "0.08")])
    reason, _ = await run_session(ws, agent, fast_config(max_experiments=4, **GATED), on_event)
    assert reason == "max-experiments" and waits == [1, 2, 3]
    assert [s for s, _ in _rows(ws)] == ["keep", "discard", "keep", "keep"]
    withdrawn = _kind(ws, "withdrawn")
    assert [w["description"] for w in withdrawn] == ["MATRIX_LR 0.04 -> 0.02"]
    assert "moved" in withdrawn[0]["reason"]
    assert _messages(ws) == ["MATRIX_LR 0.16 -> 0.08", "MATRIX_LR 0.04 -> 0.16", "workspace"]
    assert _actions(ws) == [("approve", 1), ("force-keep", 2), ("approve", 3)]


@pytest.mark.parametrize("pipeline", [False, True], ids=["serial", "pipelined"])
async def test_revert_last_keep_walks_back_the_keeps(tmp_path, pipeline):
    ws = make_workspace(tmp_path / "ws")
    base = GitRepo(ws.path).head_commit()

    refused = asyncio.Event()

    def on_event(engine, event):
        if isinstance(event, RunStarted) and event.experiment == 1:
            engine.send(RevertLastKeep())  # refused: training
        if isinstance(event, PhaseChanged) and event.phase == "proposing" and event.experiment in (3, 4, 5):
            engine.send(RevertLastKeep())
        if isinstance(event, EngineMessage) and event.text.startswith("revert: nothing to revert"):
            refused.set()

    # by idea (see engine_support): #3 is in flight through the reverts (serial: cancelled by the
    # first; pipelined, asked while #2 trained: it answers after them and no longer applies)
    agent = ScriptedAgent({1: lr_to("0.06"), 2: lr_to("0.08"), 3: after(refused, lr_to("0.05")), 4: None,
                           5: lr_to("0.05")})
    reason, events = await run_session(ws, agent, fast_config(max_experiments=6, pipeline=pipeline), on_event)
    assert reason == "max-experiments"
    assert _rows(ws) == [("keep", "baseline"), ("keep", "MATRIX_LR 0.04 -> 0.06"), ("keep", "MATRIX_LR 0.06 -> 0.08"),
                         ("discard", "MATRIX_LR 0.06 -> 0.08 [reverted]"),
                         ("discard", "MATRIX_LR 0.04 -> 0.06 [reverted]"), ("keep", "MATRIX_LR 0.04 -> 0.05")]
    best = [round(r.best_val_bpb, 4) for r in of_type(events, RowLogged)]
    assert best == [1.1, 1.0415, 1.0, 1.0415, 1.1, 1.0678]  # 1.0678 is kept against the restored 1.1
    warnings = _warnings(events)
    assert any(w.startswith("revert: #1 is training") for w in warnings)
    assert any(w.startswith("revert: nothing to revert") for w in warnings)
    assert _messages(ws) == ["MATRIX_LR 0.04 -> 0.05", "workspace"] and GitRepo(ws.path).log()[1][0] == base
    assert "MATRIX_LR = 0.04" in agent.contexts[-1].train_py and agent.contexts[-1].kept_diffs == ()
    assert _actions(ws) == [("revert", 3), ("revert", 4)]


async def test_every_action_is_recorded_and_misplaced_ones_only_warn(tmp_path):
    ws = make_workspace(tmp_path / "ws")

    sent = []

    def on_event(engine, event):
        if isinstance(event, RunStarted) and not sent:  # the baseline's run (not its noise re-runs)
            sent.append(event)
            for command in (Veto(), ForceKeep(), Approve(), SetApprovalGate(True), Pause()):
                engine.send(command)
        if event == PhaseChanged(1, "paused"):
            engine.send(Resume())
        if event == PhaseChanged(1, "awaiting-approval"):
            engine.send(SetApprovalGate(False))  # approves the waiting proposal

    agent = ScriptedAgent([lr("0.04", "0.08")])
    reason, events = await run_session(ws, agent, fast_config(max_experiments=2), on_event)
    assert reason == "max-experiments" and of_type(events, SessionStarted)[0].approval_gate is False
    assert [s for s, _ in _rows(ws)] == ["keep", "keep"]
    assert [w.split(":")[0] for w in _warnings(events)] == ["veto", "force-keep", "approve"]
    assert _actions(ws) == [("gate-on", 0), ("pause", 0), ("resume", 1), ("gate-off", 1)]
    records = _kind(ws, "action")
    for record in records:
        assert set(record) == {"kind", "action", "experiment", "commit", "time", "detail", "tag"}
        assert datetime.fromisoformat(record["time"]).utcoffset().total_seconds() == 0
        assert len(record["commit"]) == 7 and record["tag"] == "t1" and record["detail"]
    assert "trains now" in records[-1]["detail"]
    applied = of_type(events, ActionApplied)
    assert [(a.action, a.experiment, a.detail) for a in applied] == [
        (r["action"], r["experiment"], r["detail"]) for r in records]
    assert any(e.text.startswith("gate-off: ") for e in of_type(events, EngineMessage))


async def test_pause_and_stop_work_at_the_gate(tmp_path):
    ws = make_workspace(tmp_path / "ws")

    def on_event(engine, event):
        if event == PhaseChanged(1, "awaiting-approval"):
            engine.send(Pause())
            engine.send(Approve())
        if event == PhaseChanged(2, "paused"):
            engine.send(Resume())
        if event == PhaseChanged(2, "awaiting-approval"):
            engine.send(Stop())

    agent = ScriptedAgent({1: lr("0.04", "0.08"), 2: lr_to("0.16")})  # by idea: see engine_support
    reason, events = await run_session(ws, agent, fast_config(**GATED), on_event)
    assert reason == "stopped" and _rows(ws) == [("keep", "baseline"), ("keep", "MATRIX_LR 0.04 -> 0.08")]
    assert _trained(events) == [1]
    assert [w["description"] for w in _kind(ws, "withdrawn")] == ["MATRIX_LR 0.08 -> 0.16"]
    assert _messages(ws) == ["MATRIX_LR 0.04 -> 0.08", "workspace"] and not GitRepo(ws.path).is_dirty()
    assert _actions(ws) == [("pause", 1), ("approve", 1), ("resume", 2), ("stop", 2)]


def test_approve_is_refused_headless_and_read_from_cockpit_toml(tmp_path, capsys):
    ws = make_workspace(tmp_path / "ws", toml='profile = "tiny"\napproval_gate = true\n')
    assert main(["--workspace", str(ws.path), "--headless", "--approve"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cockpit: --approve needs the cockpit UI") and "\n" not in err
    assert main(["--workspace", str(ws.path), "--headless", "--max-experiments", "1", "--budget", "0.2",
                 "--tag", "h1"]) == 0  # the file's gate is dropped headless, with a note
    assert "approval_gate = true in cockpit.toml is ignored in headless mode" in capsys.readouterr().err
    (ws.path / "cockpit.toml").write_text('profile = "tiny"\napproval_gate = "yes"\n')
    assert main(["--workspace", str(ws.path), "--headless"]) == 1
    assert "approval_gate must be true or false" in capsys.readouterr().err
