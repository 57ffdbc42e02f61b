"""The noise floor, confirming re-runs and early abort (cockpit.rules.noise,
cockpit.engine.measuring, cockpit.rules.early_abort): real git, the fake train.py whose
val_bpb gets scripted offsets (FAKE_OFFSETS) and whose loss follows MATRIX_LR."""

from __future__ import annotations

import dataclasses

import math
import statistics

import pytest
from engine_support import ScriptedAgent, fast_config, lr, lr_to, make_workspace, run_session

from cockpit.rules.early_abort import LossWatch, at, smoothed
from cockpit.events import NoiseMeasured, PhaseChanged, RowLogged, StepLogged
from cockpit.store.journal import Journal
from cockpit.store.records import read_records
from cockpit.store.results import read_rows
from cockpit.rules.noise import NoiseFloor, judge, threshold


def fake_val(matrix_lr: float) -> float:
    """The fake train.py's val_bpb before its offset."""
    return 1.0 + abs(math.log2(matrix_lr / 0.08)) / 10


def offsets(tmp_path, monkeypatch, *values: float) -> None:
    path = tmp_path / "offsets"
    path.write_text("\n".join(str(v) for v in values))
    monkeypatch.setenv("FAKE_OFFSETS", str(path))


# ------------------------------------------------------------------ units --

def test_threshold_and_judgement():
    floor = NoiseFloor((1.1, 1.11, 1.09, 1.1))
    assert floor.sigma == pytest.approx(statistics.stdev([1.1, 1.11, 1.09, 1.1]))
    assert threshold(0.0, 0.01) == pytest.approx(0.02) and threshold(0.05, 0.01) == 0.05
    assert threshold(0.0, 0.01, runs=2) == pytest.approx(0.02 / math.sqrt(2))
    assert judge(1.1, (1.05,), 0.0, 0.01).verdict == "keep"
    close = judge(1.1, (1.09,), 0.0, 0.01)
    assert close.verdict == "confirm" and close.delta_sigma == pytest.approx(-1.0)
    assert judge(1.1, (1.09,), 0.0, 0.01, can_confirm=False).verdict == "discard"
    assert judge(1.1, (1.12,), 0.0, 0.01).verdict == "discard"
    assert judge(1.1, (1.09, 1.08), 0.0, 0.01).verdict == "keep"  # mean 0.015 better > 0.0141
    # no noise floor, no fixed threshold: upstream's strict rule
    assert judge(1.1, (1.0999,), 0.0, 0.0).verdict == "keep" and judge(1.1, (1.1,), 0.0, 0.0).verdict == "discard"


def test_loss_watch_stops_only_a_run_clearly_behind():
    incumbent = [(t, 4.0 - t / 10) for t in range(0, 101, 5)]
    assert at(smoothed(incumbent), 50) is not None and at(incumbent, 101) is None

    def feed(shift: float) -> LossWatch:
        watch = LossWatch(incumbent, budget_s=100, warmup=0.3, margin=0.05)
        for t in range(5, 101, 5):
            step = StepLogged(1, t, float(t), 4.0 - t / 10 + shift, 1.0, 10, 1, 1, 1, 100 - t)
            if watch.feed(step):
                break
        return watch

    assert feed(0.04).verdict is None and feed(-0.5).verdict is None
    behind = feed(0.5).verdict
    assert behind is not None and 30 <= behind["at_s"] <= 50 and behind["saved_s"] == 100 - behind["at_s"]


# ----------------------------------------------------------------- engine --

async def test_an_improvement_inside_the_noise_is_not_kept_and_a_larger_one_is(tmp_path, monkeypatch):
    ws = make_workspace(tmp_path / "ws")
    # baseline and its 3 re-runs, then exp 1, its confirming re-run, exp 2
    offsets(tmp_path, monkeypatch, 0.0, 0.01, -0.01, 0.0, 0.0, 0.0, 0.0)
    agent = ScriptedAgent([lr("0.04", "0.0428"), lr("0.04", "0.08")])
    reason, events = await run_session(ws, agent, fast_config(max_experiments=3, noise_runs=3))
    assert reason == "max-experiments"
    sigma = statistics.stdev([1.1, 1.11, 1.09, 1.1])
    measured = [e for e in events if isinstance(e, NoiseMeasured)]
    assert len(measured) == 1 and measured[0].sigma == pytest.approx(sigma)
    assert measured[0].threshold == pytest.approx(2 * sigma)

    rows = read_rows(ws.results_tsv)
    assert [(r.status, r.description) for r in rows] == [
        ("keep", "baseline"), ("discard", "MATRIX_LR 0.04 -> 0.0428 [within noise]"),
        ("keep", "MATRIX_LR 0.04 -> 0.08")]
    assert sigma < 1.1 - fake_val(0.0428) < 2 * sigma  # inside the noise, above 1 sigma: worth a re-run
    logged = [e for e in events if isinstance(e, RowLogged)]
    assert logged[1].delta_sigma == pytest.approx((fake_val(0.0428) - 1.1) / sigma, rel=1e-3)  # 6 decimals printed
    assert logged[2].delta_sigma == pytest.approx((1.0 - 1.1) / sigma)

    records = read_records(ws.records_jsonl)
    floor = [r for r in records if r.get("kind") == "noise-floor"]
    assert len(floor) == 1 and floor[0]["runs"] == pytest.approx([1.1, 1.11, 1.09, 1.1])
    reruns = [r for r in records if r.get("kind") == "rerun"]
    assert [r["label"] for r in reruns] == [f"noise floor: baseline re-run {i}/3" for i in (1, 2, 3)] + [
        "confirming re-run of #1"]
    assert all((ws.path / r["log_path"]).exists() for r in reruns)
    experiment = [r for r in records if r.get("kind") == "experiment"]
    assert experiment[1]["noise"]["runs"] == pytest.approx([fake_val(0.0428)] * 2)
    assert experiment[1]["noise"]["verdict"] == "discard" and experiment[2]["noise"]["verdict"] == "keep"
    phases = [e.phase for e in events if isinstance(e, PhaseChanged)]
    assert phases.count("measuring-noise") == 3 and phases.count("confirming") == 1
    # the re-runs were journaled and closed: a dead engine's restart would kill one left running
    entries, _ = Journal(ws.path).read()
    aux = [e for e in entries if e["entry"].startswith("aux-")]
    assert len(aux) == 8 and {e["id"] for e in aux if e["entry"] == "aux-train"} == {
        e["id"] for e in aux if e["entry"] == "aux-close"}


async def test_an_improvement_under_one_sigma_is_discarded_without_a_re_run(tmp_path, monkeypatch):
    ws = make_workspace(tmp_path / "ws")
    offsets(tmp_path, monkeypatch, 0.0, 0.01, -0.01, 0.0, 0.0, 0.0)
    agent = ScriptedAgent([lr("0.04", "0.041")])
    await run_session(ws, agent, fast_config(max_experiments=2, noise_runs=3))
    sigma = statistics.stdev([1.1, 1.11, 1.09, 1.1])
    assert 0 < 1.1 - fake_val(0.041) < sigma  # better, but by under CONFIRM_FROM = 1 sigma
    assert [r.description for r in read_rows(ws.results_tsv)][1] == "MATRIX_LR 0.04 -> 0.041 [within noise]"
    records = read_records(ws.records_jsonl)
    assert not [r for r in records if r.get("kind") == "rerun" and r["label"].startswith("confirming")]
    assert [r for r in records if r.get("kind") == "experiment"][1]["noise"]["runs"] == [pytest.approx(fake_val(0.041))]


async def test_a_close_improvement_confirmed_by_its_re_run_is_kept_on_the_mean(tmp_path, monkeypatch):
    ws = make_workspace(tmp_path / "ws")
    offsets(tmp_path, monkeypatch, 0.0, 0.03, -0.03, 0.0, 0.0, -0.004)
    agent = ScriptedAgent([lr("0.04", "0.055")])
    await run_session(ws, agent, fast_config(max_experiments=2, noise_runs=3))
    rows = read_rows(ws.results_tsv)
    assert rows[1].status == "keep" and rows[1].description.endswith(" [confirmed]")
    assert rows[1].val_bpb == pytest.approx(round(fake_val(0.055) - 0.002, 6), abs=1e-6)  # the mean of its 2 runs


async def test_no_noise_floor_keeps_upstreams_strict_rule(tmp_path, monkeypatch):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([lr("0.04", "0.041")])
    _, events = await run_session(ws, agent, fast_config(max_experiments=2, noise_runs=0))
    assert [r.status for r in read_rows(ws.results_tsv)] == ["keep", "keep"]
    assert not [e for e in events if isinstance(e, NoiseMeasured)]
    assert not [r for r in read_records(ws.records_jsonl) if r.get("kind") in ("rerun", "noise-floor")]


async def test_early_abort_stops_a_run_clearly_behind_and_counts_the_time_saved(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.3")  # 5 step lines over 1.5 s
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([lr("0.04", "0.02"), lr("0.04", "0.08")])
    reason, events = await run_session(ws, agent, fast_config(max_experiments=3, budget_s=1.5, early_abort=True))
    assert reason == "max-experiments"
    rows = read_rows(ws.results_tsv)
    assert [(r.status, r.description) for r in rows] == [
        ("keep", "baseline"), ("discard", "MATRIX_LR 0.04 -> 0.02 [aborted early]"), ("keep", "MATRIX_LR 0.04 -> 0.08")]
    record = [r for r in read_records(ws.records_jsonl) if r.get("kind") == "experiment"][1]
    assert "trails the incumbent" in record["abort"]["reason"] and record["stopped"] is False
    assert 0.45 <= record["abort"]["at_s"] < 1.5 and record["abort"]["saved_s"] == pytest.approx(
        1.5 - record["abort"]["at_s"])
    assert [s.progress_pct for s in events if isinstance(s, StepLogged) and s.experiment == 1][-1] < 100


async def test_without_early_abort_the_same_run_trains_to_the_end(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.3")
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([lr("0.04", "0.02")])
    await run_session(ws, agent, fast_config(max_experiments=2, budget_s=1.5))
    rows = read_rows(ws.results_tsv)
    assert (rows[1].status, rows[1].description) == ("discard", "MATRIX_LR 0.04 -> 0.02")


# ---------------------------------------------------------------- holdout --

async def test_the_holdout_score_appears_for_kept_commits(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent({1: lr("0.04", "0.08"), 2: lr_to("0.16")})  # by idea: see engine_support
    _, events = await run_session(ws, agent, fast_config(max_experiments=3))
    logged = [e for e in events if isinstance(e, RowLogged)]
    assert [(e.status, e.holdout_bpb) for e in logged] == [
        ("keep", pytest.approx(1.3)), ("keep", pytest.approx(1.2)), ("discard", None)]
    records = [r for r in read_records(ws.records_jsonl) if r.get("kind") == "experiment"]
    assert [r["holdout_bpb"] for r in records] == [pytest.approx(1.3), pytest.approx(1.2), None]
    assert not list((ws.path / ".cockpit" / "holdout").iterdir())  # read, then removed
    # the agent never saw it: not in any prompt context, not in the run's output
    from cockpit.agents.prompt import build_messages
    # (train.py's own text is left out: the fake's docstring describes its holdout)
    prompts = [str(build_messages(dataclasses.replace(c, train_py=""), max_input_tokens=None,
                                  count_tokens=lambda m: 0)) for c in agent.contexts]
    assert any("1.100000" in text for text in prompts)  # the history's val_bpb is in the prompt ...
    for text in prompts:  # ... the holdout scores (1.3 and 1.2 here) and the word are not
        assert "holdout" not in text.lower() and "1.300000" not in text and "1.200000" not in text
    assert "1.3" not in (ws.path / records[0]["log_path"]).read_text().split("---")[0]


@pytest.mark.parametrize("slope, warned", [(0.0, True), (1.0, False)])
async def test_val_and_holdout_moving_apart_beyond_the_noise_is_said(tmp_path, monkeypatch, slope, warned):
    monkeypatch.setenv("FAKE_HOLDOUT_SLOPE", str(slope))
    offsets(tmp_path, monkeypatch, 0.0, 0.01, -0.01, 0.0, 0.0)
    ws = make_workspace(tmp_path / "ws")
    agent = ScriptedAgent([lr("0.04", "0.08")])
    _, events = await run_session(ws, agent, fast_config(max_experiments=2, noise_runs=3))
    floor = [r for r in read_records(ws.records_jsonl) if r.get("kind") == "noise-floor"][0]
    assert floor["holdout_sigma"] == pytest.approx(floor["sigma"])
    messages = [e.text for e in events if type(e).__name__ == "EngineMessage" and "move apart" in e.text]
    assert bool(messages) is warned


def test_divergence_rule_is_the_gap_beyond_twice_the_combined_noise():
    """holdout.divergence pinned at its boundary with unequal sigmas: noise = 2 x hypot(0.003,
    0.004) = 0.010. val_bpb improves by 0.02 (1.50 -> 1.48); a holdout gain 0.0101 short of
    that is said, 0.0099 short is not (a sum, a max, or val's sigma alone would each put the
    boundary elsewhere)."""
    from cockpit.rules.holdout import divergence
    said = divergence(1.50, 1.60, 1.48, 1.60 - 0.0099, 0.003, 0.004)
    assert said is not None and "(gap 0.010100 > noise 0.010000)" in said
    assert divergence(1.50, 1.60, 1.48, 1.60 - 0.0101, 0.003, 0.004) is None
    assert divergence(1.50, 1.60, 1.48, 1.50, 0.003, 0.004) is None  # holdout improved more than val
    assert divergence(1.50, 1.60, 1.48, 1.60, 0.0, 0.0) is None  # no noise measured: nothing to judge by
