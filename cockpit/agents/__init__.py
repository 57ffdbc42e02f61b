"""Agents that propose edits to train.py (see ``base.Agent``).

``make_agent(name, seed, **options)`` builds one by the name used in cockpit.toml
and ``--agent``. LLM-backed agents import their clients lazily, never at cockpit
start-up: building a ``litellm`` agent does not import litellm either.
"""

from __future__ import annotations

from cockpit.agents.base import Agent, AgentExhausted, AgentFatal, ProposalContext

AGENT_NAMES = ("offline", "litellm", "optuna", "optuna+litellm")


def make_agent(name: str, seed: int = 0, **options) -> Agent:
    """The agent called ``name`` (one of AGENT_NAMES).

    ``options`` go to the agent's constructor; options that are None are left out
    (so a CLI can pass every flag). ``offline`` takes none; ``litellm`` takes
    ``model`` (required) and the keyword arguments of ``LiteLLMAgent`` (api_base,
    temperature, timeout_s, max_retries, stream, max_input_tokens, ...); ``optuna``
    takes ``storage`` (the study's journal file, required), ``study_name`` (the
    session tag) and ``sampler`` ("tpe", "cmaes" or "random"; default "tpe");
    ``optuna+litellm`` takes both sets and ``llm_share`` (cockpit.agents.mixed).
    Raises ValueError for an unknown name, a missing model or options the agent
    does not take.
    """
    given = {key: value for key, value in options.items() if value is not None}
    if name == "offline":
        if given:
            raise ValueError(f"the offline agent takes no options (got {', '.join(sorted(given))})")
        from cockpit.agents.offline import OfflineAgent

        return OfflineAgent(seed=seed)
    if name == "litellm":
        from cockpit.agents.llm import LiteLLMAgent

        model = given.pop("model", None)
        if not model:
            raise ValueError("the litellm agent needs a model, e.g. --model openai/gpt-4o-mini")
        try:
            return LiteLLMAgent(model, **given)
        except TypeError as exc:
            raise ValueError(f"bad option for the litellm agent: {exc}") from exc
    if name == "optuna+litellm":
        from cockpit.agents.mixed import DEFAULT_SHARE, MixedAgent

        share = given.pop("llm_share", DEFAULT_SHARE)
        sampler_options = {k: given.pop(k) for k in ("storage", "study_name", "sampler") if k in given}
        return MixedAgent(make_agent("optuna", seed, **sampler_options), make_agent("litellm", seed, **given), share)
    if name == "optuna":
        from cockpit.agents.sampler import SamplerAgent

        storage = given.pop("storage", None)
        if storage is None:
            raise ValueError("the optuna agent needs the path of its study's storage")
        try:
            return SamplerAgent(storage, given.pop("study_name", "cockpit"), seed=seed, **given)
        except TypeError as exc:
            raise ValueError(f"bad option for the optuna agent: {exc}") from exc
    raise ValueError(f"unknown agent {name!r} (known: {', '.join(AGENT_NAMES)})")


__all__ = ["Agent", "AgentExhausted", "AgentFatal", "ProposalContext", "make_agent", "AGENT_NAMES"]
