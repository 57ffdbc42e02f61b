"""Crash fixing as upstream does it: fix attempts on top of the crashed train.py,
each its own experiment; a kept fix, exhausted attempts, the offline agent declining."""

from __future__ import annotations

from engine_support import (DEPTH_COMMENT, LR_COMMENT, MODE_COMMENT, ScriptedAgent, blocks, crash_on_change,
                            fast_config, idea, line, lr, make_workspace, mode, of_type, run_session, set_line)

from cockpit.agents.offline import OfflineAgent
from cockpit.commands import Stop
from cockpit.events import EngineMessage, PhaseChanged, RowLogged
from cockpit.store.records import read_records
from cockpit.store.results import read_rows
from cockpit.store.repo import GitRepo, short


def experiments(ws) -> list[dict]:
    """records.jsonl's experiments (not the noise floor's re-runs, nor a proposal asked ahead and set aside)."""
    return [r for r in read_records(ws.records_jsonl) if r["kind"] == "experiment"]


async def test_a_fix_that_works_is_kept_on_top_of_the_crash(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    base = GitRepo(ws.path).head_commit()
    idea = blocks("faster Muon", (line("MODE", '"ok"', MODE_COMMENT), line("MODE", '"crash"', MODE_COMMENT)),
                  (line("MATRIX_LR", "0.04", LR_COMMENT), line("MATRIX_LR", "0.08", LR_COMMENT)))
    agent = ScriptedAgent([idea], fixes=[mode("ok", old='"crash"')])
    reason, events = await run_session(ws, agent, fast_config(max_experiments=3))

    assert reason == "max-experiments"
    rows = read_rows(ws.results_tsv)
    assert [(r.status, r.description) for r in rows] == [
        ("keep", "baseline"), ("crash", "faster Muon"), ("keep", "faster Muon (fix 1/2: mode ok)")]
    assert rows[2].val_bpb == 1.0
    [fix] = agent.asks(fix_attempt=1)
    assert fix.experiment == 2 and not agent.asks(fix_attempt=2)
    assert "RuntimeError: fake CUDA out of memory" in fix.crash_log_tail
    assert len(fix.crash_log_tail.splitlines()) <= 50
    assert 'MODE = "crash"' in fix.train_py and "MATRIX_LR = 0.08" in fix.train_py
    assert [e.experiment for e in of_type(events, RowLogged)] == [0, 1, 2]

    records = experiments(ws)
    assert [(r["fix_attempt"], r["fix_of"]) for r in records] == [(0, ""), (0, ""), (1, rows[1].commit)]
    assert records[2]["parent"] == short(base)  # the diff is the whole change since the last keep
    changed = [d for d in records[2]["diff"].splitlines() if d[:1] in "+-" and d[:3] not in ("+++", "---")]
    assert changed == ["-" + line("MATRIX_LR", "0.04", LR_COMMENT), "+" + line("MATRIX_LR", "0.08", LR_COMMENT)]
    repo = GitRepo(ws.path)
    assert [m for _, m in repo.log()] == ["faster Muon (fix 1/2: mode ok)", "faster Muon", "workspace"]
    assert 'MODE = "ok"' in ws.train_py.read_text() and not repo.is_dirty()


async def test_fixes_that_all_crash_are_reset_and_logged(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    base = GitRepo(ws.path).head_commit()
    agent = ScriptedAgent([mode("crash"), lr("0.04", "0.08")],
                          fixes=[lr("0.04", "0.05"), set_line("DEPTH", "4", "5", DEPTH_COMMENT)])
    reason, events = await run_session(ws, agent, fast_config(max_experiments=5))

    rows = read_rows(ws.results_tsv)
    assert [(r.status, r.description) for r in rows] == [
        ("keep", "baseline"), ("crash", "mode crash"),
        ("crash", "mode crash (fix 1/2: MATRIX_LR 0.04 -> 0.05)"),
        ("crash", "mode crash (fix 2/2: DEPTH 4 -> 5)"), ("keep", "MATRIX_LR 0.04 -> 0.08")]
    # the fixes in order (pipelined, the next idea was asked while the crash trained: before them)
    assert [c.fix_attempt for c in agent.contexts if c.fix_attempt] == [1, 2]
    assert [idea(c) for c in agent.contexts if not c.fix_attempt] == [1, 2]
    [second_fix], [after] = agent.asks(fix_attempt=2), [c for c in agent.asks(fix_attempt=0) if idea(c) == 2]
    assert "MATRIX_LR = 0.05" in second_fix.train_py and 'MODE = "crash"' in second_fix.train_py
    assert 'MODE = "ok"' in after.train_py and "MATRIX_LR = 0.04" in after.train_py
    records = experiments(ws)
    assert records[3]["fix_of"] == rows[2].commit and records[3]["fix_attempt"] == 2
    repo = GitRepo(ws.path)
    assert [c for c, _ in repo.log()][1] == base and len(repo.log()) == 2
    assert not repo.is_dirty()


async def test_the_offline_agent_declines_fixes_so_nothing_changes(tmp_path):
    ws = make_workspace(tmp_path / "ws", train_py=crash_on_change())
    base = GitRepo(ws.path).head_commit()
    reason, events = await run_session(ws, OfflineAgent(), fast_config(max_experiments=3))

    assert reason == "max-experiments"
    rows = read_rows(ws.results_tsv)
    assert [r.status for r in rows] == ["keep", "crash", "crash"]
    assert all("fix" not in r.description for r in rows) and " -> " in rows[1].description
    assert all(r["fix_attempt"] == 0 for r in experiments(ws))
    declined = [e.text for e in of_type(events, EngineMessage) if e.text.startswith("no fix")]  # not after the last row
    assert len(declined) == 1 and "the offline agent does not fix crashes" in declined[0]
    assert GitRepo(ws.path).head_commit() == base


async def test_stop_during_a_fix_attempt_resets_to_the_last_keep(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    base = GitRepo(ws.path).head_commit()
    agent = ScriptedAgent([mode("crash")], fixes=[None])  # the fix never comes

    def on_event(engine, event):
        if isinstance(event, PhaseChanged) and event == PhaseChanged(2, "proposing"):
            engine.send(Stop())

    reason, _ = await run_session(ws, agent, fast_config(), on_event)
    assert reason == "stopped"
    assert [r.status for r in read_rows(ws.results_tsv)] == ["keep", "crash"]
    assert GitRepo(ws.path).head_commit() == base and 'MODE = "ok"' in ws.train_py.read_text()


async def test_no_fix_attempts_when_configured_off(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([mode("crash"), lr("0.04", "0.08")], fixes=[mode("ok", old='"crash"')])
    await run_session(ws, agent, fast_config(max_experiments=3, fix_attempts=0))
    assert [c.fix_attempt for c in agent.contexts] == [0, 0]
    assert [r.status for r in read_rows(ws.results_tsv)] == ["keep", "crash", "keep"]
