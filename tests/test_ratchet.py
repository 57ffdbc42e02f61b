"""Engine tests: real git, the fake train.py, a scripted agent."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from engine_support import (DEPTH_COMMENT, FAKES, LR_COMMENT, ScriptedAgent, fast_config, idea, lr, lr_to,
                            make_workspace, mode, of_type, reply, run_session, set_line)

from cockpit.commands import Pause, Resume, Stop

from cockpit.events import (EngineMessage, NoiseMeasured, PhaseChanged, ProposalRejected, RowLogged, RunStarted,
                            SessionEnded, SessionStarted)
from cockpit.store.records import read_records
from cockpit.store.results import read_rows
from cockpit.store.repo import GitRepo, short


def experiment_records(ws) -> list[dict]:
    """records.jsonl's experiments and dropped proposals (not the noise floor's re-runs, nor a
    proposal asked ahead and set aside)."""
    return [r for r in read_records(ws.records_jsonl) if r["kind"] in ("experiment", "dropped", "action")]


async def test_session_keeps_only_improvements(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    base = GitRepo(ws.path).head_commit()
    agent = ScriptedAgent({  # by idea: asked ahead or not, each proposal is the same
        1: lr("0.04", "0.08"),                               # 1.0 < 1.1: keep
        2: lr_to("0.16"),                                    # 1.1: discard
        3: mode("crash"),                                    # exit 1: crash
        4: set_line("DEPTH", "4", "5", DEPTH_COMMENT),       # 1.0, not strictly lower: discard
    })
    reason, events = await run_session(ws, agent, fast_config(max_experiments=5))

    assert reason == "max-experiments"
    rows = read_rows(ws.results_tsv)
    assert [r.status for r in rows] == ["keep", "keep", "discard", "crash", "discard"]
    assert [r.val_bpb for r in rows] == [1.1, 1.0, 1.1, 0.0, 1.0]
    assert rows[0].description == "baseline" and rows[0].commit == short(base)
    assert [e.status for e in of_type(events, RowLogged)] == [r.status for r in rows]
    assert of_type(events, SessionEnded)[-1].experiments == 5

    repo = GitRepo(ws.path)
    assert repo.current_branch() == "autoresearch/t1"
    log = repo.log()
    assert [m for _, m in log] == ["MATRIX_LR 0.04 -> 0.08", "workspace"]
    assert short(log[0][0]) == rows[1].commit
    assert repo.show_file("HEAD", "train.py") + "\n" == ws.train_py.read_text()
    assert "MATRIX_LR = 0.08" in ws.train_py.read_text()
    assert not repo.is_dirty()

    records = experiment_records(ws)
    assert [r["status"] for r in records] == ["keep", "keep", "discard", "crash", "discard"]
    second = records[1]
    assert second["parent"] == short(base) and second["commit"] == rows[1].commit
    assert "+MATRIX_LR = 0.08" in second["diff"]
    assert second["summary"]["num_steps"] == 5 and second["returncode"] == 0
    assert set(second["timings"]) == {"propose_s", "startup_s", "training_s", "eval_s", "wall_s", "gap_s",
                                      "wait_model_s", "wait_human_s", "paused_s", "git_s", "overhead_s"}
    gap = second["timings"]
    assert gap["gap_s"] == pytest.approx(gap["wait_model_s"] + gap["wait_human_s"] + gap["paused_s"]
                                         + gap["overhead_s"])
    assert 0 < gap["git_s"] <= gap["overhead_s"] and records[0]["timings"]["gap_s"] == 0.0
    assert 0 < second["session"]["idle_share"] < 1 and second["session"]["experiments"] == 2
    assert second["agent"] == "scripted" and second["budget_s"] == 0.2 and second["profile"] == "tiny"
    assert len(second["harness_sha256"]) == 64 and len(second["program_sha256"]) == 64
    assert (ws.path / second["log_path"]).read_text().count("step 0000") == 5
    assert records[3]["returncode"] == 1 and records[3]["val_bpb"] is None


async def test_context_carries_history_and_program(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent({1: lr("0.04", "0.08"), 2: lr_to("0.16")})
    await run_session(ws, agent, fast_config(max_experiments=3))
    second = [c for c in agent.contexts if idea(c) == 2][-1]  # pipelined: asked again after the keep of #1
    assert [(h.status, h.description) for h in second.history] == [
        ("keep", "baseline"), ("keep", "MATRIX_LR 0.04 -> 0.08")]
    assert "Try learning rates" in second.program_md
    assert "MATRIX_LR = 0.08" in second.train_py


async def test_nan_and_hard_limit_are_crashes(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([mode("nan"), mode("hang")])
    started = time.monotonic()
    reason, events = await run_session(ws, agent, fast_config(max_experiments=3))
    assert reason == "max-experiments"
    assert [r.status for r in read_rows(ws.results_tsv)] == ["keep", "crash", "crash"]
    records = experiment_records(ws)
    assert records[1]["returncode"] == 0 and records[1]["summary"]["val_bpb"] is None
    assert records[2]["timed_out"] is True
    assert read_rows(ws.results_tsv)[2].description == "mode hang [timed out]"
    assert time.monotonic() - started < 15
    assert 'MODE = "ok"' in ws.train_py.read_text()
    # NaN may be fixed (declined): one fix asked, for #2 (pipelined, after #2's idea was asked ahead)
    assert [(c.experiment, c.fix_attempt) for c in agent.contexts if c.fix_attempt] == [(2, 1)]
    assert sorted(c.fix_attempt for c in agent.contexts) == [0, 0, 1]


async def test_dropped_proposal_leaves_train_py_unchanged(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    before = ws.train_py.read_text()
    bad = [
        "",                                                   # empty
        "I would raise the learning rate.",                   # no block
        lr("0.05", "0.08"),                                   # search not found
        reply("x = 1", "x = 2", "other file", "prepare.py"),  # wrong file
    ]
    agent = ScriptedAgent(bad + [lr("0.04", "0.08")])
    reason, events = await run_session(ws, agent, fast_config(max_experiments=2))

    rejected = of_type(events, ProposalRejected)
    assert [r.attempt for r in rejected] == [1, 2, 3, 4]
    assert "empty" in rejected[0].reason and "prepare.py" in rejected[3].reason
    assert [c.last_error for c in agent.contexts[1:4]] == [r.reason for r in rejected[:3]]
    assert [c.attempt for c in agent.contexts] == [0, 1, 2, 3, 0]
    records = experiment_records(ws)
    dropped = records[1]
    assert dropped["kind"] == "dropped" and dropped["status"] == "dropped"
    assert len(dropped["errors"]) == 4 and dropped["commit"] == ""
    assert [r.status for r in read_rows(ws.results_tsv)] == ["keep", "keep"]
    assert [m for _, m in GitRepo(ws.path).log()][-1] == "workspace"
    assert len(GitRepo(ws.path).log()) == 2  # only the valid proposal was committed
    assert before.replace("0.04", "0.08", 1) == ws.train_py.read_text()


@pytest.mark.parametrize("pipeline", [False, True], ids=["serial", "pipelined"])
async def test_too_many_drops_pause_with_the_last_rejection_and_resume(tmp_path, pipeline):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent(["nonsense"] * 4 + [lr("0.04", "0.08")])
    paused = []

    def on_event(engine, event):
        if isinstance(event, PhaseChanged) and event.phase == "paused":
            paused.append((event.experiment, len(GitRepo(ws.path).log()), len(agent.contexts)))
            asyncio.get_running_loop().call_later(0.1, engine.send, Resume())

    reason, events = await run_session(ws, agent, fast_config(max_reasks=1, max_consecutive_drops=2,
                                                              max_experiments=2, pipeline=pipeline), on_event)
    assert reason == "max-experiments"  # the session did not end at the second drop
    assert paused == [(1, 1, 4)]  # paused once, after 4 asks (2 proposals x 2 replies), nothing committed
    dropped = [r for r in read_records(ws.records_jsonl) if r["kind"] == "dropped"]
    assert len(dropped) == 2
    last = dropped[-1]["errors"][-1].strip().splitlines()[0]
    errors = [e.text for e in of_type(events, EngineMessage) if e.level == "error"]
    assert errors == [f"the agent produced no valid edit in 2 proposals in a row (last rejection: {last}); "
                      "paused: fix it, then resume"]
    assert [r.status for r in read_rows(ws.results_tsv)] == ["keep", "keep"]  # #1 is the good edit after resume


@pytest.mark.parametrize("pipeline", [False, True], ids=["serial", "pipelined"])
async def test_pause_waits_after_the_running_experiment(tmp_path, pipeline):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([lr("0.04", "0.08"), set_line("DEPTH", "4", "5", DEPTH_COMMENT)])

    def on_event(engine, event):
        if isinstance(event, RunStarted) and event.experiment == 1:
            engine.send(Pause())
        if isinstance(event, PhaseChanged) and event.phase == "paused":
            asyncio.get_running_loop().call_later(0.3, engine.send, Resume())

    started = time.monotonic()
    reason, events = await run_session(ws, agent, fast_config(max_experiments=3, pipeline=pipeline), on_event)
    assert reason == "max-experiments"
    phases = [(e.experiment, e.phase) for e in of_type(events, PhaseChanged)]
    paused = phases.index((2, "paused"))
    # serial: #2 is asked after the pause; pipelined: it was asked while #1 trained and is committed
    assert phases[paused + 1] == (2, "committing" if pipeline else "proposing")
    resumed = next(i for i, e in enumerate(events) if isinstance(e, PhaseChanged) and e.phase == "paused")
    assert not [e for e in events[:resumed] if isinstance(e, RunStarted) and e.experiment == 2]
    row1 = next(i for i, e in enumerate(events) if isinstance(e, RowLogged) and e.experiment == 1)
    assert row1 < events.index(PhaseChanged(2, "paused"))
    assert len(agent.contexts) == 2 and time.monotonic() - started > 0.3


async def test_stop_kills_training_and_resets(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    base = GitRepo(ws.path).head_commit()
    agent = ScriptedAgent([mode("hang"), lr("0.04", "0.08")])

    def on_event(engine, event):
        if isinstance(event, RunStarted) and event.experiment == 1:
            asyncio.get_running_loop().call_later(0.2, engine.send, Stop())

    started = time.monotonic()
    reason, events = await run_session(ws, agent, fast_config(budget_s=30.0), on_event)
    assert reason == "stopped" and time.monotonic() - started < 10
    rows = read_rows(ws.results_tsv)
    assert [r.status for r in rows] == ["keep", "crash"]
    assert rows[1].description == "mode hang [stopped]"
    records = experiment_records(ws)
    assert records[1]["kind"] == "action" and records[1]["action"] == "stop"  # recorded as it came
    assert records[2]["kind"] == "experiment" and records[2]["stopped"] is True
    assert GitRepo(ws.path).head_commit() == base
    assert 'MODE = "ok"' in ws.train_py.read_text()
    assert events[-2] == PhaseChanged(2, "stopped") and events[-1] == SessionEnded("stopped", 2)


@pytest.mark.parametrize("pipeline", [False, True], ids=["serial", "pipelined"])
async def test_stop_while_proposing_logs_no_row(tmp_path, pipeline):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([None])

    def on_event(engine, event):
        # serial: #1 is asked after the noise floor; pipelined: it was asked while the baseline
        # trained, and the engine waits for it once the floor is measured
        if pipeline and isinstance(event, NoiseMeasured):
            assert agent.asked.is_set()
            engine.send(Stop())
        if not pipeline and isinstance(event, PhaseChanged) and event.phase == "proposing":
            engine.send(Stop())

    reason, events = await run_session(ws, agent, fast_config(pipeline=pipeline), on_event)
    assert reason == "stopped" and of_type(events, NoiseMeasured)
    assert len(read_rows(ws.results_tsv)) == 1 and len(agent.contexts) == 1


async def test_existing_branch_is_refused(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    GitRepo(ws.path).create_branch("autoresearch/t1")
    reason, events = await run_session(ws, ScriptedAgent([]), fast_config())
    assert reason.startswith("error: branch autoresearch/t1 already exists")
    assert not of_type(events, SessionStarted) and not ws.results_tsv.exists()


async def test_baseline_crash_ends_the_session(tmp_path):
    source = (FAKES / "train.py").read_text().replace('MODE = "ok"', 'MODE = "crash"')
    ws = make_workspace(tmp_path / "ws", train_py=source)
    reason, _ = await run_session(ws, ScriptedAgent([lr("0.04", "0.08")]), fast_config())
    assert reason.startswith("error: the baseline run crashed (exit 1)")
    assert "fake CUDA out of memory" in reason
    assert [r.status for r in read_rows(ws.results_tsv)] == ["crash"]


async def test_agent_exhausted_and_dirty_tree(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    reason, _ = await run_session(ws, ScriptedAgent([]), fast_config())
    assert reason == "agent-exhausted"
    ws.train_py.write_text(ws.train_py.read_text() + "\n# human edit\n")
    reason, _ = await run_session(ws, ScriptedAgent([]), fast_config(tag="t2"))
    assert reason.startswith("error: train.py or prepare.py has uncommitted changes")


async def test_budget_from_harness_when_not_overridden(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    reason, events = await run_session(ws, ScriptedAgent([]), fast_config(budget_s=None))
    assert of_type(events, SessionStarted)[0].budget_s == 0.5  # the fake prepare.py's TIME_BUDGET
    assert reason == "agent-exhausted"


async def test_a_command_that_cannot_start_ends_with_an_error(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    config = fast_config(run_command=(str(tmp_path / "no-such-python"), "train.py"))
    reason, _ = await run_session(ws, ScriptedAgent([]), config)
    assert reason.startswith("error: cannot start") and "no-such-python" in reason


async def test_stop_while_paused_ends_without_another_row(tmp_path):
    ws = make_workspace(tmp_path / "ws")

    def on_event(engine, event):
        if isinstance(event, RunStarted):
            engine.send(Pause())
        if isinstance(event, PhaseChanged) and event.phase == "paused":
            engine.send(Stop())

    reason, events = await run_session(ws, ScriptedAgent([lr("0.04", "0.08")]), fast_config(), on_event)
    assert reason == "stopped" and len(read_rows(ws.results_tsv)) == 1
    assert PhaseChanged(1, "paused") in events and PhaseChanged(1, "proposing") not in events


HOSTILE_DESCRIPTIONS = ['"quoted" start, then more', 'a NUL\x00 in the middle', 'tab\tand\x1b[31m escape',
                        'zero\u200bwidth and "inner" quotes', '"', 'trailing quote"']


async def test_descriptions_are_one_clean_line_in_row_commit_and_record_and_pandas_reads_every_row(tmp_path):
    import pandas as pd

    ws = make_workspace(tmp_path / "ws")
    steps = [("0.04", "0.05"), ("0.05", "0.06"), ("0.06", "0.07"), ("0.07", "0.08"), ("0.08", "0.09"),
             ("0.08", "0.10")]  # four keeps, then two discards (train.py back at 0.08)
    agent = ScriptedAgent({i: lr_to(new, description)  # by idea: pipelined, a keep makes the next one asked again
                           for i, ((_, new), description) in enumerate(zip(steps, HOSTILE_DESCRIPTIONS), 1)})
    reason, _ = await run_session(ws, agent, fast_config(max_experiments=1 + len(HOSTILE_DESCRIPTIONS)))
    assert reason == "max-experiments"
    rows = read_rows(ws.results_tsv)
    descriptions = [r.description for r in rows[1:]]
    assert descriptions == ["'quoted' start, then more", "a NUL in the middle", "tab and[31m escape",
                            "zerowidth and 'inner' quotes", "'", "trailing quote'"]
    frame = pd.read_csv(ws.results_tsv, sep="\t")  # as upstream's analysis notebook reads it
    assert len(frame) == len(rows) and list(frame["description"])[1:] == descriptions
    messages = [subprocess.run(["git", "show", "-s", "--format=%B", r.commit], cwd=ws.path, capture_output=True,
                               text=True, check=True).stdout.strip() for r in rows[1:]]  # discards: reset, not gone
    assert messages == descriptions
    records = [r for r in read_records(ws.records_jsonl) if r["kind"] == "experiment"]
    assert [r["description"] for r in records[1:]] == descriptions
