"""One rule, one replay: the engine, the staircase, the status bar and the report agree.

A real engine (fake train.py: val_bpb = 1 + |log2(MATRIX_LR / 0.08)| / 10)
runs inside the cockpit app (Textual's Pilot) through a keep, a forced keep of
a worse run, a crash and a revert; then it is stopped and a second engine
resumes the session in a fresh app (as the same command again would) and runs
one more experiment. After each app the running best after every row is read
four ways, and they must be one list, the hand-computed one:

- the engine: ``RowLogged.best_val_bpb`` of every row it sent;
- the staircase: the step line it plots (``StaircasePlot.data.best``);
- the status bar: its best after the last row;
- ``cockpit report``: each row's incumbent, read from results.tsv and records.jsonl.
"""

from __future__ import annotations

import asyncio

import pytest
from app_harness import until
from engine_support import ScriptedAgent, after, fast_config, lr, lr_to, make_workspace, mode

from cockpit.app import CockpitApp
from cockpit.app.widgets.staircase import StaircasePlot
from cockpit.commands import ForceKeep, RevertLastKeep, Stop
from cockpit.events import ActionApplied, PhaseChanged, RowLogged, SessionEnded
from cockpit.store.results import read_rows
from cockpit.engine.ratchet import Engine
from cockpit.tools.report import build_report

# after each row: baseline 1.1; #1 0.32 discard (1.2); #2 its forced keep (1.2, worse than 1.1);
# #3 0.16 keep (1.1 < 1.2); #4 crash; #5 the revert of #3 (back to the forced 1.2); #6 0.08 keep (1.0)
FIRST = [1.1, 1.1, 1.2, 1.1, 1.1, 1.2, 1.0]
# resumed: #7 0.04 discard (1.1 > 1.0)
SECOND = FIRST + [1.0]


async def _session(ws, agent, config, on_event=None):
    """Run ``config``'s session inside the cockpit app; returns (app facts, engine's RowLogged list)."""
    rows: list[RowLogged] = []
    finished = []

    def factory(emit):
        def relay(event):
            emit(event)
            if isinstance(event, RowLogged):
                rows.append(event)
            if isinstance(event, SessionEnded):
                finished.append(event)
            if on_event is not None:
                on_event(engine, event)

        engine = Engine(ws, config, agent, relay)
        return engine

    app = CockpitApp(factory, title="cockpit")
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: bool(finished) and app._engine_done, timeout=60)
        line = [y for _, y in app.query_one(StaircasePlot).data.best]
        bar = app.status_bar.best
        bar_text = app.status_bar.render().plain
    return line, bar, bar_text, rows


def _later(engine, command):
    asyncio.get_running_loop().call_later(0.05, engine.send, command)


async def test_keep_force_keep_crash_revert_and_resume_agree_everywhere(tmp_path):
    ws = make_workspace(tmp_path / "ws", toml='profile = "tiny"\nfix_attempts = 0\n')

    acted = set()
    forced, reverted = asyncio.Event(), asyncio.Event()

    def on_event(engine, event):
        if isinstance(event, ActionApplied) and event.action in ("force-keep", "revert"):
            (forced if event.action == "force-keep" else reverted).set()  # once each: "proposing" may be said twice for one experiment
        if event in (PhaseChanged(2, "proposing"), PhaseChanged(5, "proposing")) and event.experiment not in acted:
            acted.add(event.experiment)
            _later(engine, ForceKeep() if event.experiment == 2 else RevertLastKeep())
        if event == PhaseChanged(7, "proposing") and 7 not in acted:  # stopped (x, y), not finished: resumable
            acted.add(7)
            _later(engine, Stop())

    # by idea (see engine_support); after(): the ask in flight when the human acts (serial: cancelled;
    # pipelined, asked while the run before trained: it answers after, no longer applies, and is asked again)
    agent = ScriptedAgent({1: lr("0.04", "0.32"), 2: after(forced, lr_to("0.02")), 3: lr("0.32", "0.16"),
                           4: mode("crash"), 5: after(reverted, lr_to("0.02")), 6: lr("0.32", "0.08"), 7: None})
    line, bar, text, rows = await _session(ws, agent, fast_config(max_experiments=8), on_event)
    assert [(r.status, r.description) for r in read_rows(ws.results_tsv)] == [
        ("keep", "baseline"), ("discard", "MATRIX_LR 0.04 -> 0.32"),
        ("keep", "MATRIX_LR 0.04 -> 0.32 [forced keep of #1]"), ("keep", "MATRIX_LR 0.32 -> 0.16"),
        ("crash", "mode crash"), ("discard", "MATRIX_LR 0.32 -> 0.16 [reverted]"), ("keep", "MATRIX_LR 0.32 -> 0.08")]
    engine = [round(r.best_val_bpb, 6) for r in rows]
    report = [round(r.incumbent, 6) for r in build_report(ws.path).rows]
    assert engine == [round(y, 6) for y in line] == report == FIRST
    assert round(bar, 6) == FIRST[-1] and "best 1.000000" in text

    agent = ScriptedAgent([lr("0.08", "0.04")])
    line, bar, text, rows = await _session(ws, agent, fast_config(max_experiments=8, resume=True))
    engine = [round(r.best_val_bpb, 6) for r in rows]  # the replayed rows, then the new one
    report = [round(r.incumbent, 6) for r in build_report(ws.path).rows]
    assert engine == [round(y, 6) for y in line] == report == SECOND
    assert round(bar, 6) == SECOND[-1] and "best 1.000000" in text
    assert len(read_rows(ws.results_tsv)) == 8 and [r.experiment for r in rows] == list(range(8))
