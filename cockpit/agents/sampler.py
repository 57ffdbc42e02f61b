"""The optuna agent: a classical sampler (TPE, CMA-ES or random) proposing train.py's constants.

Each proposal is one trial of an Optuna study, through Optuna's ask-and-tell
interface: the trial's values for the search space (cockpit.rules.search_space,
fixed when the study starts and kept in its ``space`` user attribute, so one
space holds across keeps and restarts) are written into train.py as an ordinary
SEARCH/REPLACE reply, which the engine parses, validates, commits, trains and
judges like any other (keep iff it beats the incumbent by the noise rule). The
reply's description names the trial and every constant it changes
(``TPE #12: MATRIX_LR 0.04 -> 0.031, WEIGHT_DECAY 0.2 -> 0.11``).

The agent learns each outcome from the results rows it is shown
(``ProposalContext.history``, the ledger itself; this session's rows, from its
baseline row on: ``session_rows``), so a restart loses nothing: a
trial whose row has appeared is told its val_bpb (the row's, after any
confirming re-run). A crash is told as a **penalty value**, not as Optuna's
FAIL state: TPE and CMA-ES sample only from complete trials and ignore failed
ones, so a region that runs out of memory would be proposed again and again;
told the worst val_bpb of the study so far times 1.05, it falls in TPE's "bad"
group and gets CMA-ES's lowest rank (both use only the order of the values, so
the size of the penalty does not matter beyond that) and the sampler learns to
avoid it. A trial that never ran (vetoed, dropped, superseded by a keep, or a
reply that failed to apply) is told FAIL: it says nothing about its point.
A sampled point that train.py's batch assert would refuse (``batch_fits``) is
told the penalty at once, without a run, and another is asked.
Trials training while the next is asked (pipelining, ``in_flight``) stay
running, and TPE's constant liar (``constant_liar=True``) keeps it from handing
out their points again.

The study lives in the workspace in Optuna's journal file storage (append-only
JSON lines, no database server): ``optuna/<tag>.log``, the study named after
the session tag; ``optuna-dashboard optuna/<tag>.log`` shows it. The session's
baseline train.py is told as a trial (user attribute ``baseline``) with its
val_bpb once the baseline's row is written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cockpit.agents.base import AgentExhausted, AgentFatal, NoFix, ProposalContext
from cockpit.events import RowLogged
from cockpit.row import Row
from cockpit.agents.trials import (batch_fits, distributions, params_of, render_trial, tokens_per_sequence,
                                   trial_number, values_of)
from cockpit.rules.search_space import Dimension, SpaceError, read_space
from cockpit.rules.standing import is_baseline
from cockpit.store.agent_settings import SAMPLERS as SAMPLER_NAMES

SAMPLERS = dict(zip(SAMPLER_NAMES, ("TPE", "CMA-ES", "RANDOM")))  # sampler -> the label rows carry
PENALTY = 1.05  # a crash is told the study's worst val_bpb times this
MAX_RESAMPLES = 20  # trials asked again when one changes no literal of train.py


def storage_path(workspace: Path, tag: str) -> Path:
    """Where the study of session ``tag`` is kept: ``<workspace>/optuna/<tag>.log``."""
    return Path(workspace) / "optuna" / f"{tag}.log"


class SamplerAgent:
    """Proposes the next trial of ``sampler`` ("tpe", "cmaes" or "random"; seeded by
    ``seed``) in the study ``study_name`` kept at ``storage`` (a journal file).
    Raises ValueError for an unknown sampler."""

    local = True  # it answers from this process: a fleet asks it one slot at a time (constant liar for the rest)

    def __init__(self, storage: Path, study_name: str, sampler: str = "tpe", seed: int = 0) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r} (known: {', '.join(SAMPLERS)})")
        self.storage, self.study_name, self.sampler, self.seed = Path(storage), study_name, sampler, seed
        self.name = f"optuna-{sampler}"  # the records' agent
        self._study: Any = None
        self.space: list[Dimension] = []

    def study(self) -> Any:
        """The Optuna study, created or loaded from the journal file (optuna is imported here)."""
        if self._study is None:
            import optuna
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self.storage.parent.mkdir(parents=True, exist_ok=True)
            storage = JournalStorage(JournalFileBackend(str(self.storage)))
            self._study = optuna.create_study(study_name=self.study_name, storage=storage, direction="minimize",
                                              sampler=self._make_sampler(optuna), load_if_exists=True)
        return self._study

    def _make_sampler(self, optuna: Any) -> Any:
        if self.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=self.seed, constant_liar=True, multivariate=True)
        if self.sampler == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=self.seed, warn_independent_sampling=False)
        return optuna.samplers.RandomSampler(seed=self.seed)

    async def propose(self, context: ProposalContext) -> str:
        """The next trial as a SEARCH/REPLACE reply. Raises NoFix for a fix attempt
        (the crash is told to the study instead), AgentFatal for a train.py whose
        ``search:`` marks cannot be read, AgentExhausted when the space is empty or
        no trial changes train.py."""
        if context.fix_attempt:
            raise NoFix("the optuna agent does not fix crashes: the crash is told to its study as a penalty")
        study = self.study()
        try:
            self.space = self._space(study, context.train_py)
        except SpaceError as exc:
            raise AgentFatal(f"optuna agent: {exc}") from None
        if not self.space:
            raise AgentExhausted("the optuna agent finds no numeric constant to search in train.py")
        tell_outcomes(study, context)
        self._tell_baseline(study, context)
        ratio = study.user_attrs.get("batch_ratio")
        for _ in range(MAX_RESAMPLES):
            trial = study.ask(distributions(self.space))
            values = values_of(self.space, trial.params)
            if ratio is not None and not batch_fits(values, ratio):
                trial.set_user_attr("foreseen_crash", True)
                study.tell(trial, penalty(study))  # train.py's batch assert would fail: learnt without a run
                continue
            changed = [(d, d.literal(values[d.name])) for d in self.space if d.literal(values[d.name]) != d.param.literal]
            if changed:
                return render_trial(SAMPLERS[self.sampler], trial.number, changed)
            study.tell(trial, state=_state("FAIL"))  # the same train.py: nothing to run
        raise AgentExhausted(f"the optuna agent's last {MAX_RESAMPLES} trials all gave the current train.py "
                             "or one its batch assert refuses")

    def describe(self, train_py: str) -> str:
        """What the agent will search, for the start of a session: the sampler, the
        study's file and the dimensions of ``train_py`` (a study that exists keeps
        the ranges it started with), or why the marks cannot be read."""
        head = (f"optuna agent ({SAMPLERS[self.sampler]}): study {self.study_name!r} in {self.storage} "
                f"(optuna-dashboard {self.storage})")
        try:
            space = read_space(train_py)
        except SpaceError as exc:
            return f"{head}\n  {exc}"
        lines = [f"  {d.describe()}" for d in space] or ["  (no numeric constant to search)"]
        return "\n".join([f"{head}; train.py's search space, {len(space)} constants:", *lines])

    def observe(self, event: Any) -> None:
        """The engine's events (registered by the engine, cockpit.engine.ratchet): a
        RowLogged of one of this study's running trials is told at once, so the
        study is current when the session ends. Whatever fails here is told again
        from the rows at the next proposal (``tell_outcomes``), so it is not raised
        into the engine."""
        if not isinstance(event, RowLogged):
            return
        number = trial_number(event.description)
        if number is None:
            return
        try:
            study = self.study()
            if study.get_trials(deepcopy=False)[number].state == _state("RUNNING"):
                tell_row(study, number, Row(event.commit, event.val_bpb, event.memory_gb, event.status,
                                            event.description, event.experiment))
        except Exception:  # noqa: BLE001 - a study told late loses nothing (docstring)
            pass

    def read_space(self, train_py: str) -> list[Dimension]:
        """The study's space for ``train_py`` (``_space``), kept in ``space``. Raises SpaceError."""
        self.space = self._space(self.study(), train_py)
        return self.space

    def _space(self, study: Any, train_py: str) -> list[Dimension]:
        """The study's space: as stored when it started, else read from ``train_py``
        and stored; constants new since then are added."""
        read = read_space(train_py)
        stored = {entry["name"]: entry for entry in study.user_attrs.get("space", [])}
        by_name = {d.name: d for d in read}
        space = []
        for dimension in read:
            entry = stored.get(dimension.name)
            space.append(dimension if entry is None else
                         Dimension(entry["kind"], entry["low"], entry["high"], dimension.param, entry["marked"]))
        if not stored or set(by_name) - set(stored):
            study.set_user_attr("space", [dict(name=d.name, kind=d.kind, low=d.low, high=d.high, marked=d.marked)
                                          for d in space])
        if "batch_ratio" not in study.user_attrs:
            ratio = tokens_per_sequence({d.name: d.param.value for d in read})
            if ratio is not None:
                study.set_user_attr("batch_ratio", ratio)
        return space

    def _tell_baseline(self, study: Any, context: ProposalContext) -> None:
        """Tell the current train.py's values with the incumbent's val_bpb as a trial
        of the study, once: when the study has no baseline trial yet and a keep is
        in the rows (a proposal asked ahead while the baseline trains comes first)."""
        if any(t.user_attrs.get("baseline") for t in study.get_trials(deepcopy=False)):
            return
        kept = [row.score for row in session_rows(context) if row.status == "keep" and row.score is not None]
        if not kept:
            return
        import optuna

        params = params_of(self.space, {d.name: d.param.value for d in self.space})
        if params is None:
            return
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions(self.space),
                                                  value=kept[-1], user_attrs={"baseline": True}))


def _state(name: str) -> Any:
    import optuna

    return getattr(optuna.trial.TrialState, name)


def session_rows(context: ProposalContext) -> list:
    """The rows of this session: those from its baseline row on (the history holds
    the workspace's earlier sessions too, whose trial numbers belong to other
    studies); none while the baseline itself is training (asked ahead of it)."""
    if any(is_baseline(Row("", 0.0, 0.0, "", text)) for text in context.in_flight):
        return []
    rows = list(context.history)
    starts = [i for i, row in enumerate(rows) if is_baseline(row)]
    return rows[starts[-1]:] if starts else rows


def tell_outcomes(study: Any, context: ProposalContext) -> None:
    """Tell every running trial of ``study`` whose outcome ``context`` shows: its
    row's val_bpb (keep or discard), a penalty for a crash (module docstring),
    FAIL for a trial that never ran (vetoed, or older than a trial with a row and
    not training now)."""
    rows: dict[int, Any] = {}
    for row in session_rows(context):
        number = trial_number(row.description)
        if number is not None:
            rows[number] = row  # the last row of a trial wins (a forced keep of it, a revert)
    running = {n for n in map(trial_number, context.in_flight) if n is not None}
    vetoed = {n for n in map(trial_number, context.vetoed) if n is not None}
    newest = max(rows, default=-1)
    for trial in study.get_trials(deepcopy=False, states=(_state("RUNNING"),)):
        row = rows.get(trial.number)
        if row is not None:
            tell_row(study, trial.number, row)
        elif trial.number in vetoed or (trial.number < newest and trial.number not in running):
            study.tell(trial.number, state=_state("FAIL"))


def tell_row(study: Any, number: int, row: Any) -> None:
    """Tell trial ``number`` the outcome of its results ``row``: its val_bpb, or for a
    crash (or a row without a score) the penalty, its number added to the study's
    ``crashed`` user attribute."""
    if row.status != "crash" and row.score is not None:
        study.tell(number, row.score)
        return
    study.set_user_attr("crashed", [*study.user_attrs.get("crashed", []), number])
    study.tell(number, penalty(study))


def penalty(study: Any) -> float:
    """The value a crash is told: the worst val_bpb a run of the study scored so far
    (penalties left out, so they do not compound) times PENALTY; PENALTY when the
    study has none."""
    crashed = set(study.user_attrs.get("crashed", []))
    values = [t.value for t in study.get_trials(deepcopy=False, states=(_state("COMPLETE"),))
              if t.value is not None and math.isfinite(t.value) and t.number not in crashed
              and not t.user_attrs.get("foreseen_crash")]
    return max(values, default=1.0) * PENALTY


