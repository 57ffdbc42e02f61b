"""The mixed agent (``--agent optuna+litellm``): a sampler that learns from every trial,
and an LLM that writes a share of the proposals from the sampler's state.

The hybrid of the published comparison on the upstream task (ferreirafabio/
autoresearch-automl, upstream #383: CMA-ES learning from every trial with the LLM
proposing 30% of them from the sampler's state scored best of all methods). Of
the first asks of a session, proposal k goes to the LLM iff
``floor((k + 1) * share) > floor(k * share)`` (exactly ``share`` of them, evenly
spread: at 0.3, the 4th, 7th, 10th, ...; the count starts again at a restart);
re-asks after an invalid reply and fix attempts after a crash go to whichever
agent wrote that experiment's proposal (the sampler fixes nothing: NoFix).

The LLM sees the program with one more section (``sampler_state``): the study's
best configurations and the spread of its better quarter, and the names of the
searched constants. It may change anything in train.py; its proposal is told to
the study only as far as it touches searched constants: when its train.py sets
at least one of them to a new value inside the study's ranges, the row's
val_bpb (a crash: the sampler's penalty) is added to the study as a finished
trial with those values (user attribute ``llm``); a proposal that moves none,
or one outside the ranges, is not told (a structural change says nothing about
the sampler's point). That telling happens when the row is logged (``observe``)
and is kept in memory until then: a proposal still in flight when the engine
stops is not told after the restart.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from cockpit.agents.base import AgentFatal, NoFix, ProposalContext
from cockpit.agents.sampler import SamplerAgent, penalty
from cockpit.agents.trials import distributions, params_of, values_of
from cockpit.events import RowLogged
from cockpit.rules.edits import apply_reply
from cockpit.rules.replies import EditError
from cockpit.rules.search_space import SpaceError, read_space

DEFAULT_SHARE = 0.3  # the published hybrid's LLM share (module docstring)
TOP = 3  # best configurations shown to the LLM
PREFIX = 200  # characters of a description that find its row (the row may add " [within noise]" and such)


def llm_turn(k: int, share: float) -> bool:
    """Whether first ask ``k`` (0-based) of a session goes to the LLM at ``share``."""
    return math.floor((k + 1) * share + 1e-9) > math.floor(k * share + 1e-9)


class MixedAgent:
    """``sampler`` (cockpit.agents.sampler SamplerAgent) proposing, and ``llm`` (any
    agent; the litellm one in use) writing ``share`` of the proposals (0 < share <= 1).
    Raises ValueError for a share outside that range."""

    def __init__(self, sampler: SamplerAgent, llm: Any, share: float = DEFAULT_SHARE) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"llm_share must be above 0 and at most 1 (got {share!r})")
        self.sampler, self.llm, self.share = sampler, llm, share
        self._asked = 0
        self._writer: dict[int, Any] = {}  # experiment -> the agent that wrote its proposal
        self._last: Any = None
        self._pending: dict[str, dict[str, float]] = {}  # an LLM proposal's description -> its searched values

    @property
    def name(self) -> str:
        """The records' agent: the one that wrote the last reply (before any, both)."""
        return self._last.name if self._last is not None else f"{self.sampler.name}+{self.llm.name}"

    @property
    def last_usage(self) -> Any:
        """The LLM's usage of the last reply when the LLM wrote it, else None."""
        return getattr(self.llm, "last_usage", None) if self._last is self.llm else None

    async def propose(self, context: ProposalContext) -> str:
        """The next proposal, from the sampler or (its share) the LLM; re-asks and fix
        attempts go to the experiment's writer. Raises what that agent raises (NoFix
        for a fix attempt of the sampler's proposal; AgentFatal for train.py's
        ``search:`` marks that cannot be read)."""
        writer = self._writer.get(context.experiment) if context.attempt or context.fix_attempt else None
        if writer is None:
            writer = self.llm if llm_turn(self._asked, self.share) else self.sampler
            self._asked += 1
            self._writer[context.experiment] = writer
        self._last = writer
        if writer is self.sampler:
            if context.fix_attempt:
                raise NoFix("the sampler wrote this experiment's proposal: its crash is told to the study")
            return await self.sampler.propose(context)
        study = self.sampler.study()
        try:
            self.sampler.read_space(context.train_py)  # the incumbent's values, which the reply moves from
        except SpaceError as exc:
            raise AgentFatal(f"optuna+litellm agent: {exc}") from None
        reply = await self.llm.propose(replace(context, program_md=context.program_md + sampler_state(
            study, self.sampler.space)))
        self._remember(reply, context.train_py)
        return reply

    def _remember(self, reply: str, source: str) -> None:
        """Keep the searched values of ``reply``'s train.py when it moves one of them."""
        try:
            proposal, new = apply_reply(reply, source)
            values = {d.name: d.param.value for d in read_space(new)}
        except (EditError, SpaceError, ValueError):
            return  # the engine says why the reply does not apply and asks again
        old = {d.name: d.param.value for d in self.sampler.space}  # read from ``source`` just now
        if any(name in values and values[name] != value for name, value in old.items()):
            self._pending[proposal.description[:PREFIX]] = {**old, **{n: v for n, v in values.items() if n in old}}

    def observe(self, event: Any) -> None:
        """The sampler's own telling, and an LLM proposal's row told to the study
        (module docstring). Errors are not raised into the engine."""
        self.sampler.observe(event)
        if not isinstance(event, RowLogged):
            return
        key = next((k for k in self._pending if event.description.startswith(k)), None)
        if key is None:
            return
        values = self._pending.pop(key)
        try:
            import optuna

            study = self.sampler.study()
            space = self.sampler.space
            params = params_of(space, values)
            if params is None:
                return  # outside the study's ranges: not told
            value = event.val_bpb if event.status != "crash" and event.val_bpb else penalty(study)
            study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions(space), value=value,
                                                      user_attrs={"llm": True, "experiment": event.experiment}))
        except Exception:  # noqa: BLE001 - a trial not told loses the sampler a hint, not a row
            pass


def sampler_state(study: Any, space: list) -> str:
    """The section added to the LLM's program: the study's ``TOP`` best trials and the
    range of each searched constant over its better quarter (at least 2 trials)."""
    done = sorted((t for t in study.get_trials(deepcopy=False)
                   if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value)),
                  key=lambda t: t.value)
    names = ", ".join(d.name for d in space)
    lines = ["", "", "## The sampler's state (cockpit's optuna+litellm agent)", "",
             f"A sampler searches these constants of train.py: {names}. You write some of the proposals. "
             "You may change anything; a change to these constants is told to the sampler.", ""]
    if not done:
        return "\n".join(lines + ["The study has no finished trial yet.", ""])
    lines.append(f"Best of {len(done)} finished trials (val_bpb, lower is better):")
    for t in done[:TOP]:
        lines.append(f"- {t.value:.6f}: " + ", ".join(f"{k}={_short(v)}" for k, v in _values(space, t).items()))
    better = [_values(space, t) for t in done[:max(2, len(done) // 4)]]
    if len(better) >= 2:
        lines.append(f"Spread of the best {len(better)}: " + ", ".join(
            f"{k} {_short(min(v[k] for v in better))}..{_short(max(v[k] for v in better))}"
            for k in better[0] if all(k in v for v in better)))
    return "\n".join(lines + [""])


def _values(space: list, trial: Any) -> dict[str, float]:
    """A trial's constants by name (powers of two and betas as train.py writes them)."""
    try:
        return values_of(space, trial.params)
    except KeyError:  # a trial of an older space
        return dict(trial.params)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)

