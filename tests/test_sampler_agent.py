"""The optuna agent (cockpit.agents.sampler): a trial's edit applied and validated, outcomes
told from the results rows, a crash as a penalty, a study resumed from its journal file
after a restart, a batch the assert would refuse told without a run, and a session
of the engine driven by it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import optuna
import pytest

from cockpit.agents import make_agent
from cockpit.agents.base import AgentExhausted, AgentFatal, NoFix, ProposalContext
from cockpit.agents.sampler import PENALTY, SamplerAgent, storage_path
from cockpit.agents.trials import batch_fits, trial_number
from cockpit.row import Row
from cockpit.rules.edits import apply_reply
from cockpit.rules.constants import read_hyperparams
from cockpit.rules.search_space import read_space
from substrate.hparams import render_train_py

from engine_support import fast_config, make_workspace, run_session
from cockpit.store.results import read_rows

SOURCE = ("DEPTH = 4  # search: off\n"
          "MATRIX_LR = 0.04  # search: log 0.005..0.2\n"
          "WEIGHT_DECAY = 0.2  # search: float 0..0.5\n"
          "ADAM_BETA2 = 0.95  # search: beta 0.8..0.999\n")
BASELINE = Row("a1b2c3d", 1.5, 1.0, "keep", "baseline")


def ask(agent: SamplerAgent, source: str = SOURCE, history=(BASELINE,), **context) -> str:
    return asyncio.run(agent.propose(ProposalContext(source, "", tuple(history), **context)))


def load(path: Path, name: str = "t") -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    return optuna.load_study(study_name=name, storage=storage)


def row_of(reply: str, status: str, val: float) -> Row:
    proposal, _ = apply_reply(reply, SOURCE)
    return Row("b2c3d4e", val, 1.0, status, proposal.description)


def test_a_trial_is_an_ordinary_edit_naming_every_changed_constant(tmp_path: Path):
    agent = SamplerAgent(tmp_path / "s.log", "t", "tpe", seed=1)
    reply = ask(agent)
    proposal, new_source = apply_reply(reply, SOURCE)  # the engine's own parse, apply and triviality check
    assert trial_number(proposal.description) == 1  # trial 0 is the baseline, told first
    trial = load(tmp_path / "s.log").trials[1]
    values = {p.name: p.value for p in read_hyperparams(new_source)}
    assert values["MATRIX_LR"] == pytest.approx(trial.params["MATRIX_LR"], rel=1e-3)
    assert values["ADAM_BETA2"] == pytest.approx(1 - trial.params["1-ADAM_BETA2"], rel=1e-3)
    assert values["DEPTH"] == 4  # marked off: never touched
    for name, old in (("MATRIX_LR", "0.04"), ("WEIGHT_DECAY", "0.2"), ("ADAM_BETA2", "0.95")):
        new = next(d.param.literal for d in read_space(new_source) if d.name == name)
        assert (f"{name} {old} -> {new}" in proposal.description) == (new != old)
    assert proposal.description.startswith("TPE #1: ")


def test_outcomes_are_told_from_the_rows_and_a_crash_as_a_penalty(tmp_path: Path):
    agent = SamplerAgent(tmp_path / "s.log", "t", "random", seed=0)
    first = ask(agent)
    second = ask(agent, in_flight=(apply_reply(first, SOURCE)[0].description,))  # asked ahead: 1 still running
    study = load(tmp_path / "s.log")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "RUNNING", "RUNNING"]
    history = (BASELINE, row_of(first, "discard", 1.7), row_of(second, "crash", 0.0))
    ask(agent, history=history)
    study = load(tmp_path / "s.log")
    baseline, one, two, three = study.trials
    assert baseline.value == 1.5 and baseline.user_attrs["baseline"]
    assert one.value == 1.7
    assert two.value == pytest.approx(1.7 * PENALTY) and study.user_attrs["crashed"] == [2]  # worse than the worst
    assert three.state.name == "RUNNING"


def test_the_baseline_is_told_when_its_row_comes_after_a_trial_asked_ahead(tmp_path: Path):
    agent = SamplerAgent(tmp_path / "s.log", "t", "tpe", seed=0)
    first = ask(agent, history=(), in_flight=("baseline",))  # pipelined: asked while the baseline trains
    assert trial_number(apply_reply(first, SOURCE)[0].description) == 0
    ask(agent, history=(BASELINE,), in_flight=(apply_reply(first, SOURCE)[0].description,))
    ask(agent, history=(BASELINE,), in_flight=(apply_reply(first, SOURCE)[0].description,))
    baselines = [t for t in load(tmp_path / "s.log").trials if t.user_attrs.get("baseline")]
    assert [(t.number, t.value) for t in baselines] == [(1, 1.5)]  # told once, after trial 0


def test_rows_of_an_earlier_session_are_not_told_to_this_study(tmp_path: Path):
    earlier = (Row("a1b2c3d", 1.5, 1.0, "keep", "baseline"), Row("b2c3d4e", 1.9, 1.0, "discard", "TPE #1: X 1 -> 2"),
               Row("c3d4e5f", 1.2, 1.0, "keep", "TPE #2: X 1 -> 3"))
    agent = SamplerAgent(tmp_path / "s.log", "new", "tpe", seed=0)
    ask(agent, history=earlier, in_flight=("baseline",))  # the new session's baseline trains: trial 0
    this = Row("d4e5f6a", 1.4, 1.0, "keep", "baseline")
    ask(agent, history=(*earlier, this))  # trial 0 has no row of this session yet; the baseline is told
    ask(agent, history=(*earlier, this))
    trials = load(tmp_path / "s.log", "new").trials
    assert [(t.number, t.state.name, t.value) for t in trials[:2]] == [(0, "RUNNING", None), (1, "COMPLETE", 1.4)]
    assert trials[2].state.name == "RUNNING"  # not told the earlier session's "TPE #2" row


def test_a_vetoed_trial_and_one_that_never_ran_are_failed_not_scored(tmp_path: Path):
    agent = SamplerAgent(tmp_path / "s.log", "t", "random", seed=0)
    vetoed = apply_reply(ask(agent), SOURCE)[0].description
    superseded = ask(agent, vetoed=(vetoed,))  # trial 2: asked again after the veto
    third = ask(agent, vetoed=(vetoed,))  # trial 3; trial 2 never got a row (dropped, stale)
    ask(agent, history=(BASELINE, row_of(third, "keep", 1.4)), vetoed=(vetoed,))
    states = [t.state.name for t in load(tmp_path / "s.log").trials]
    assert states == ["COMPLETE", "FAIL", "FAIL", "COMPLETE", "RUNNING"], superseded


def test_a_restart_resumes_the_same_study_from_its_journal_file(tmp_path: Path):
    path = storage_path(tmp_path, "nov21")
    first = ask(SamplerAgent(path, "nov21", "tpe", seed=0))
    # the same command again: a new process, a new agent, the same file
    again = SamplerAgent(path, "nov21", "tpe", seed=0)
    reply = ask(again, history=(BASELINE, row_of(first, "discard", 1.6)))
    assert trial_number(apply_reply(reply, SOURCE)[0].description) == 2
    study = load(path, "nov21")
    assert [t.value for t in study.trials[:2]] == [1.5, 1.6]
    assert len(study.user_attrs["space"]) == 3  # the space fixed at the start, read back


def test_the_space_is_kept_from_the_study_start_across_keeps(tmp_path: Path):
    agent = SamplerAgent(tmp_path / "s.log", "t", "random", seed=0)
    ask(agent, source="MATRIX_LR = 0.04\n")  # inferred: 0.005..0.32
    ask(agent, source="MATRIX_LR = 0.3\n")  # a keep moved it: the range is not re-inferred around 0.3
    assert agent.space[0].low == pytest.approx(0.005) and agent.space[0].high == pytest.approx(0.32)


def test_a_batch_the_assert_would_refuse_is_told_without_a_run(tmp_path: Path):
    assert batch_fits({"TOTAL_BATCH_SIZE": 4096, "DEVICE_BATCH_SIZE": 8}, 256)
    assert batch_fits({"TOTAL_BATCH_SIZE": 2048, "DEVICE_BATCH_SIZE": 4}, 256)  # more passes
    assert not batch_fits({"TOTAL_BATCH_SIZE": 2048, "DEVICE_BATCH_SIZE": 16}, 256)  # fewer tokens than a pass
    assert not batch_fits({"TOTAL_BATCH_SIZE": 3072, "DEVICE_BATCH_SIZE": 8}, 256)
    # 2048 / 8 = 256 tokens per sequence at the start: every other point of this space has fewer
    source = "TOTAL_BATCH_SIZE = 2048  # search: pow2 512..2048\nDEVICE_BATCH_SIZE = 8  # search: pow2 8..32\n"
    agent = SamplerAgent(tmp_path / "s.log", "t", "random", seed=0)
    with pytest.raises(AgentExhausted, match="batch assert"):
        ask(agent, source=source)
    trials = load(tmp_path / "s.log").trials
    foreseen = [t for t in trials if t.user_attrs.get("foreseen_crash")]
    assert foreseen and all(t.value == pytest.approx(1.5 * PENALTY) for t in foreseen)
    assert all(t.params["log2(TOTAL_BATCH_SIZE)"] - t.params["log2(DEVICE_BATCH_SIZE)"] < 8 for t in foreseen)
    assert len(trials) == 1 + 20  # the baseline and MAX_RESAMPLES asked: none trained


def test_what_the_agent_refuses(tmp_path: Path):
    agent = SamplerAgent(tmp_path / "s.log", "t", "tpe")
    with pytest.raises(NoFix):
        ask(agent, fix_attempt=1, max_fix_attempts=2)
    with pytest.raises(AgentFatal, match="train.py:1: .*reads neither"):
        ask(agent, source="MATRIX_LR = 0.04  # search: lg 0.005..0.2\n")
    with pytest.raises(AgentExhausted):
        ask(agent, source="MODE = 'ok'\n")
    with pytest.raises(ValueError, match="unknown sampler"):
        SamplerAgent(tmp_path / "s.log", "t", "grid")
    with pytest.raises(ValueError, match="needs the path"):
        make_agent("optuna")
    assert make_agent("optuna", storage=tmp_path / "x.log", study_name="x", sampler="cmaes").name == "optuna-cmaes"


def test_cmaes_proposes_from_the_shipped_train_py(tmp_path: Path):
    agent = SamplerAgent(tmp_path / "s.log", "t", "cmaes", seed=0)
    source = render_train_py("cpu")
    proposal, new = apply_reply(ask(agent, source=source), source)
    assert re.match(r"CMA-ES #\d+: ", proposal.description) and new != source


@pytest.mark.slow
def test_an_engine_session_with_the_optuna_agent_tells_every_row(tmp_path: Path):
    fake = (Path(__file__).parent / "fakes" / "train.py").read_text()
    fake = fake.replace("MATRIX_LR = 0.04  # Muon", "MATRIX_LR = 0.04  # search: log 0.01..0.32; Muon")
    fake = fake.replace("DEPTH = 4  # number", "DEPTH = 4  # search: off; number")
    fake = fake.replace("STEPS = 5  # progress", "STEPS = 5  # search: off; progress")
    ws = make_workspace(tmp_path / "ws", train_py=fake)
    path = storage_path(ws.path, "t1")
    agent = SamplerAgent(path, "t1", "tpe", seed=3)
    reason, _ = asyncio.run(run_session(ws, agent, fast_config("t1", max_experiments=5, noise_runs=0)))
    rows = read_rows(ws.results_tsv)
    assert len(rows) == 5
    numbers = [trial_number(r.description) for r in rows[1:]]
    assert numbers == sorted(set(numbers))  # each row its own trial, in the order asked
    study = load(path, "t1")
    for trial in study.trials:  # pipelined: one trial is asked while the baseline trains, and an
        if trial.number in numbers:  # ask-ahead made stale by a keep is failed, not left running
            continue
        assert trial.user_attrs.get("baseline") or trial.state.name == "FAIL", trial
    assert sum(bool(t.user_attrs.get("baseline")) for t in study.trials) == 1
    agent = SamplerAgent(path, "t1", "tpe", seed=3)  # the same command again: the study goes on
    asyncio.run(run_session(ws, agent, fast_config("t1", max_experiments=7, noise_runs=0, resume=True)))
    rows = read_rows(ws.results_tsv)
    study = load(path, "t1")
    told = {t.number: t.value for t in study.trials if t.state.name == "COMPLETE"}
    for row in rows[1:]:
        number = trial_number(row.description)
        assert told[number] == pytest.approx(row.val_bpb, abs=1e-6)  # every row told to its trial
    assert [trial_number(r.description) for r in rows[1:]] == sorted({trial_number(r.description) for r in rows[1:]})
