"""The engine on the settings users run: every setting at its default (cockpit.store.settings:
pipelining on, a noise floor of 3 baseline re-runs, 2 fix attempts, the gate off), the
budget aside.

The engine tests run these defaults too (engine_support.fast_config), with the serial
loop or no noise floor only where that mode is the subject; the tests of pipelining
(tests/test_pipeline.py) and of the noise floor (tests/test_noise.py) look at each. These run the ratchet's main paths (keep, discard, a crash and its fix, a
stop and the same command again) the way a user's night runs them, and check what must
hold there too: one row and one record per experiment, the noise floor measured once,
the proposals asked ahead recorded as such, the journal closed, the branch at the last keep.
"""

from __future__ import annotations

import dataclasses

from engine_support import (DEPTH_COMMENT, LR_COMMENT, MODE_COMMENT, ScriptedAgent, blocks, fast_config, line,
                            lr, make_workspace, mode, of_type, run_session, set_line)

from cockpit.commands import Stop
from cockpit.events import NoiseMeasured, ProposalQueued, RowLogged, RunStarted
from cockpit.store.journal import Journal
from cockpit.store.records import read_records
from cockpit.store.repo import GitRepo
from cockpit.store.results import read_rows
from cockpit.store.settings import Settings


def user_config(**overrides):
    """fast_config with every setting at its user default (Settings()), the budget aside."""
    defaults = {f.name: getattr(Settings(), f.name) for f in dataclasses.fields(Settings)
                if f.name not in ("budget_s", "profile")}
    return fast_config(**{**defaults, **overrides})


def experiments(ws) -> list[dict]:
    return [r for r in read_records(ws.records_jsonl) if r.get("kind") == "experiment"]


def unclosed(ws) -> set:
    entries, _ = Journal(ws.path).read()
    opened = {e["id"] for e in entries if e["entry"] == "open"}
    return opened - {e["id"] for e in entries if e["entry"] == "close"}


def test_user_config_is_the_defaults():
    settings = user_config().settings
    assert settings.pipeline and settings.noise_runs == 3 and settings.fix_attempts == 2
    assert not settings.approval_gate and not settings.early_abort


async def test_a_night_on_the_default_settings(tmp_path):
    """Keep, discard, a crash fixed on top of itself: with the noise floor and pipelining on."""
    ws = make_workspace(tmp_path / "ws")
    idea = blocks("faster Muon", (line("MODE", '"ok"', MODE_COMMENT), line("MODE", '"crash"', MODE_COMMENT)),
                  (line("MATRIX_LR", "0.08", LR_COMMENT), line("MATRIX_LR", "0.16", LR_COMMENT)))
    agent = ScriptedAgent([lr("0.04", "0.08"), set_line("DEPTH", "4", "6", DEPTH_COMMENT), idea],
                          fixes=[mode("ok", old='"crash"')])
    reason, events = await run_session(ws, agent, user_config(max_experiments=5))
    assert reason == "max-experiments"
    rows = read_rows(ws.results_tsv)
    assert [(r.status, r.description) for r in rows] == [
        ("keep", "baseline"), ("keep", "MATRIX_LR 0.04 -> 0.08"), ("discard", "DEPTH 4 -> 6"),
        ("crash", "faster Muon"), ("discard", "faster Muon (fix 1/2: mode ok)")]
    # the noise floor: measured once, from the baseline and its 3 re-runs, before experiment 1
    floors = of_type(events, NoiseMeasured)
    assert len(floors) == 1 and len(floors[0].runs) == 4 and floors[0].sigma == 0.0
    started = [e.experiment for e in of_type(events, RunStarted)]
    assert started == [0, 0, 0, 0, 1, 2, 3, 4]
    assert events.index(floors[0]) < next(i for i, e in enumerate(events) if isinstance(e, RunStarted)
                                          and e.experiment == 1)
    records = read_records(ws.records_jsonl)
    assert [r["label"] for r in records if r["kind"] == "rerun"] == [
        f"noise floor: baseline re-run {i}/3" for i in (1, 2, 3)]
    assert [r["kind"] for r in records].count("noise-floor") == 1
    # pipelining: the ideas were asked while the run before trained, and say so
    assert [(q.experiment, q.running) for q in of_type(events, ProposalQueued)][:2] == [(1, 0), (2, 1)]
    found = experiments(ws)
    assert [r["experiment"] for r in found] == [0, 1, 2, 3, 4]
    assert found[2]["queued"]["asked_during"] == 1 and found[4]["fix_attempt"] == 1
    # one row per experiment, each with its record; the journal closed; the branch at the last keep
    assert [e.experiment for e in of_type(events, RowLogged)] == [0, 1, 2, 3, 4]
    assert [(r["commit"], r["status"]) for r in found] == [(row.commit, row.status) for row in rows]
    assert unclosed(ws) == set()
    assert GitRepo(ws.path).head_commit()[:7] == rows[1].commit and "MATRIX_LR = 0.08" in ws.train_py.read_text()


async def test_a_stopped_night_continues_with_the_same_command(tmp_path):
    """Stop after the first experiment's row, then the same settings again (resume): no second
    baseline or noise floor, the numbering and the best go on."""
    ws = make_workspace(tmp_path / "ws")

    def stop_after_one(engine, event):
        if isinstance(event, RowLogged) and event.experiment == 1:
            engine.send(Stop())

    first = ScriptedAgent([lr("0.04", "0.08"), set_line("DEPTH", "4", "6", DEPTH_COMMENT)])
    reason, _ = await run_session(ws, first, user_config(), stop_after_one)
    assert reason == "stopped"
    before = read_rows(ws.results_tsv)
    assert [r.status for r in before][:2] == ["keep", "keep"]  # (the run asked ahead may have been stopped)
    again = ScriptedAgent([set_line("DEPTH", "4", "3", DEPTH_COMMENT)])
    reason, events = await run_session(ws, again, user_config(resume=True, max_experiments=len(before) + 1))
    assert reason == "max-experiments"
    assert of_type(events, NoiseMeasured)[-1].runs and not [e for e in of_type(events, RunStarted)
                                                              if e.experiment == 0]
    rows = read_rows(ws.results_tsv)
    assert rows[:len(before)] == before and len(rows) == len(before) + 1
    assert again.contexts[0].experiment == len(before) and "MATRIX_LR = 0.08" in again.contexts[0].train_py
    assert [r["experiment"] for r in experiments(ws)] == list(range(len(rows))) and unclosed(ws) == set()
