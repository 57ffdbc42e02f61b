"""Pilot tests of what pipelining, the noise floor and time accounting show in the
cockpit: a queued proposal, the drop key, the status bar's GPU-idle share and
rate against the ideal, the table's Δσ and holdout columns, a row's time account."""

from __future__ import annotations

from app_harness import Harness, until
from cockpit.app.widgets import ResultsTable, StatusBar
from cockpit.app.widgets.results_table import FIXED_COLUMNS
from cockpit.commands import DropQueued
from cockpit.events import NoiseMeasured, ProposalQueued, RowLogged, TimeAccounted
from scripted_engine import Experiment

TIMINGS = {"propose_s": 31.2, "wait_model_s": 0.0, "wait_human_s": 0.0, "paused_s": 0.0, "gap_s": 0.08,
           "overhead_s": 0.08, "git_s": 0.03, "startup_s": 4.1, "training_s": 60.0, "eval_s": 8.2,
           "wall_s": 72.4}
SESSION = {"wall_s": 3600.0, "idle_share": 0.031, "experiments": 47, "experiments_per_hour": 47.0,
           "ideal_per_hour": 60.0}


def column(table: ResultsTable, label: str, row: int) -> str:
    index = [name for name, _ in FIXED_COLUMNS].index(label)
    return table.get_row_at(row)[index].plain


async def test_queued_proposal_drop_key_accounting_and_noise_columns():
    harness = Harness(script=(Experiment("keep", 1.0, "baseline"),), end_when_done=False)
    async with harness.app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: harness.engine is not None and len(harness.statuses()) == 1)
        engine = harness.engine
        engine.emit(ProposalQueued(1, 0, "double the lr", "--- a/train.py\n+++ b/train.py\n-LR = 1\n+LR = 2\n",
                                   awaiting_approval=True))
        await until(pilot, lambda: any("queued while exp 0 trains: double the lr" in line
                                       for line in harness.log_lines()))
        assert any("double the lr" in line for line in harness.agent_lines())
        await pilot.press("d")
        await pilot.pause()
        assert engine.commands[-1] == DropQueued()

        engine.emit(NoiseMeasured([1.0, 1.01, 0.99, 1.0], 0.0082, 0.0163))
        engine.emit(RowLogged(1, "b2c3d4e", 0.95, 12.0, "keep", "double the lr", 0.95, None, -6.1, 1.1234))
        engine.emit(TimeAccounted(1, TIMINGS, SESSION))
        table = harness.app.query_one(ResultsTable)
        await until(pilot, lambda: table.row_count == 2)
        assert column(table, "Δσ", 1) == "-6.1" and column(table, "holdout", 1) == "1.123400"
        assert column(table, "Δσ", 0) == "" and column(table, "holdout", 0) == ""
        harness.clock.now += 3600  # an hour into the session: the rate shows
        harness.app.query_one(StatusBar).refresh()
        await until(pilot, lambda: "GPU idle 3.1%" in harness.status())
        assert "/60 exp/h" in harness.status() and "σ 0.008200" in harness.status()
        details = harness.app.run_details.describe(1)
        assert details is not None and "model 31.2 s (GPU waited 0.0 s)" in details.plain
        assert "cockpit 0.08 s (git 0.03 s)" in details.plain
