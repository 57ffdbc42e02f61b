"""The ``[agent]`` table of cockpit.toml, and the settings' shared error and checks.

    [agent]
    name = "litellm"           # "offline" (default), "litellm", "optuna" or "optuna+litellm"
    model = "openai/gpt-4o-mini"
    api_base = "http://127.0.0.1:8000/v1"
    timeout_s = 120
    max_retries = 3
    stream = true
    temperature = 0.7

The older one-line form ``agent = "offline"`` still works. API keys are never
read from this file (it is tracked by git): the agent takes them from the
environment. ``--agent``, ``--model`` and ``--api-base`` override the table
only when typed.
"""

from __future__ import annotations

import difflib
import math
import typing
from dataclasses import dataclass, fields, replace
from typing import Any, Optional

SAMPLERS = ("tpe", "cmaes", "random")  # the optuna agent's samplers (cockpit.agents.sampler)


class SettingsError(ValueError):
    """cockpit.toml holds a value of the wrong type, an unknown [agent] key or a key."""


@dataclass(frozen=True)
class AgentSettings:
    """The ``[agent]`` table; None means "not set" (the agent's own default)."""

    name: str = "offline"
    """Agent: "offline" (no key, no network), "litellm", "optuna" (a sampler over train.py's constants)
    or "optuna+litellm" (the sampler, with ``llm_share`` of the proposals from the LLM)."""
    model: Optional[str] = None
    """litellm model name, e.g. "openai/gpt-4o-mini" (required for litellm)."""
    api_base: Optional[str] = None
    """Base URL of an OpenAI-compatible server, e.g. "http://127.0.0.1:8000/v1"."""
    timeout_s: Optional[float] = None
    """Seconds one model call may take."""
    max_retries: Optional[int] = None
    """Retries of a failed call (rate limit, connection) before the agent gives up."""
    stream: Optional[bool] = None
    """Stream the reply (shows progress; same result)."""
    temperature: Optional[float] = None
    """Sampling temperature."""
    sampler: Optional[str] = None
    """The optuna agent's sampler: "tpe" (default), "cmaes" or "random"."""
    llm_share: Optional[float] = None
    """optuna+litellm: the share of proposals the LLM writes, above 0 and at most 1 (default 0.3)."""

    def options(self) -> dict:
        """The set options (not name) as keyword arguments of ``make_agent``."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "name" and getattr(self, f.name) is not None}

    def with_flags(self, name: Optional[str] = None, model: Optional[str] = None,
                   api_base: Optional[str] = None, sampler: Optional[str] = None) -> "AgentSettings":
        """These settings with the typed CLI flags (the non-None ones) applied."""
        typed = {k: v for k, v in (("name", name), ("model", model), ("api_base", api_base), ("sampler", sampler))
                 if v is not None}
        return replace(self, **typed)

    def check(self) -> None:
        """Raise SettingsError when the agent cannot be built from these settings
        (litellm without a model, an unknown sampler)."""
        if self.name in ("litellm", "optuna+litellm") and not self.model:
            raise SettingsError(f"--agent {self.name} needs a model: give --model MODEL "
                                "or set model under [agent] in cockpit.toml")
        if self.llm_share is not None and not (0.0 < self.llm_share <= 1.0):
            raise SettingsError(f"[agent] llm_share = {self.llm_share!r}: expected a share above 0 and at most 1")
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise SettingsError(f"[agent] sampler = {self.sampler!r}: expected one of {', '.join(SAMPLERS)}")


def _accepted(hint: Any) -> tuple[type, ...]:
    """The TOML value types a field of type ``hint`` takes: ``Optional[X]`` takes X, a
    float takes an int too (``timeout_s = 30``)."""
    kinds = [t for t in typing.get_args(hint) if t is not type(None)] or [hint]
    return (int, float) if kinds[0] is float else (kinds[0],)


# the [agent] keys and the types each takes, read off AgentSettings (declared once, there)
_AGENT_TYPES: dict[str, tuple[type, ...]] = {
    f.name: _accepted(typing.get_type_hints(AgentSettings)[f.name]) for f in fields(AgentSettings)}


def _typed(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


def parse_agent(value: Any, where: str) -> AgentSettings:
    """AgentSettings from the ``agent`` value of cockpit.toml (a name or a table).
    Raises SettingsError naming ``where`` for keys, unknown keys or wrong types."""
    if value is None:
        return AgentSettings()
    if isinstance(value, str):
        return AgentSettings(name=value)
    if not isinstance(value, dict):
        raise SettingsError(f"{where}: agent must be a name or an [agent] table")
    for key, item in value.items():
        if "key" in key.lower() or "secret" in key.lower():
            raise SettingsError(f"{where}: [agent] {key} is not read from cockpit.toml (a tracked file); "
                                "set the API key in the environment, e.g. OPENAI_API_KEY")
        if key not in _AGENT_TYPES:
            raise SettingsError(f"{where}: unknown [agent] key {key!r}{nearest(key, _AGENT_TYPES)} "
                                f"(known: {', '.join(_AGENT_TYPES)})")
        if not _typed(item, _AGENT_TYPES[key]):
            raise SettingsError(f"{where}: [agent] {key} must be {' or '.join(t.__name__ for t in _AGENT_TYPES[key])}")
    if value.get("timeout_s") is not None and (not _finite(value["timeout_s"]) or value["timeout_s"] <= 0):
        raise SettingsError(f"{where}: [agent] timeout_s must be a positive, finite number of seconds")
    if value.get("temperature") is not None and not _finite(value["temperature"]):
        raise SettingsError(f"{where}: [agent] temperature must be a finite number")
    if value.get("max_retries") is not None and value["max_retries"] < 0:
        raise SettingsError(f"{where}: [agent] max_retries must be 0 or more")
    values = {k: float(v) if k in ("timeout_s", "temperature") else v for k, v in value.items()}
    return AgentSettings(**values)


def nearest(word: str, choices) -> str:
    """' (did you mean X?)' for the closest of ``choices`` (difflib), else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _finite(value: Any) -> bool:
    return _typed(value, (int, float)) and math.isfinite(value)
