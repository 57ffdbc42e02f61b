"""cockpit.toml as typed settings, and the agent settings the CLI flags override.

    profile = "cpu"            # harness profile
    budget_s = 60              # training budget override, seconds (optional)
    seed = 0                   # the offline agent's move order
    program = "hyperparameters"  # NAME (programs/NAME.md) or PATH; default: program.md
    fix_attempts = 2           # fix attempts after a crash (0 = none)
    approval_gate = false      # every proposal waits for approve / veto in the cockpit
    pipeline = true            # ask for the next proposal while a run trains
    noise_runs = 3             # baseline re-runs measuring the noise floor (0 = off)
    keep_threshold = 0.0       # fixed val_bpb improvement a keep must exceed
    early_abort = false        # stop runs clearly behind the incumbent's loss
    abort_after = 0.3          # share of the budget before early abort judges
    abort_margin = 0.05        # smoothed loss (nats) a run may trail by

    [agent]
    name = "litellm"           # "offline" (default) or "litellm"
    model = "openai/gpt-4o-mini"
    api_base = "http://127.0.0.1:8000/v1"
    timeout_s = 120
    max_retries = 3
    stream = true
    temperature = 0.7

The older one-line form ``agent = "offline"`` still works. API keys are never
read from this file (it is tracked by git): the agent takes them from the
environment. A CLI flag overrides a setting only when it is typed.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields, replace
from typing import Any, Optional

DEFAULT_FIX_ATTEMPTS = 2
DEFAULT_NOISE_RUNS = 3


class SettingsError(ValueError):
    """cockpit.toml holds a value of the wrong type, an unknown [agent] key or a key."""


@dataclass(frozen=True)
class AgentSettings:
    """The ``[agent]`` table; None means "not set" (the agent's own default)."""

    name: str = "offline"
    """Agent: "offline" (no key, no network) or "litellm"."""
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

    def options(self) -> dict:
        """The set options (not name) as keyword arguments of ``make_agent``."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "name" and getattr(self, f.name) is not None}

    def with_flags(self, name: Optional[str] = None, model: Optional[str] = None,
                   api_base: Optional[str] = None) -> "AgentSettings":
        """These settings with the typed CLI flags (the non-None ones) applied."""
        typed = {k: v for k, v in (("name", name), ("model", model), ("api_base", api_base)) if v is not None}
        return replace(self, **typed)

    def check(self) -> None:
        """Raise SettingsError when the agent cannot be built from these settings
        (litellm without a model)."""
        if self.name == "litellm" and not self.model:
            raise SettingsError("--agent litellm needs a model: give --model MODEL "
                                "or set model under [agent] in cockpit.toml")


_AGENT_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "model": (str,), "api_base": (str,), "timeout_s": (int, float),
    "max_retries": (int,), "stream": (bool,), "temperature": (int, float),
}


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


KNOWN_KEYS = ("profile", "agent", "budget_s", "seed", "program", "fix_attempts", "approval_gate", "pipeline",
              "noise_runs", "keep_threshold", "early_abort", "abort_after", "abort_margin", "network")
PROFILE_NAMES = ("cpu", "h100", "tiny")  # also cockpit.store.workspace.PROFILES; an upstream checkout has no cockpit.toml


def nearest(word: str, choices) -> str:
    """' (did you mean X?)' for the closest of ``choices`` (difflib), else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _finite(value: Any) -> bool:
    return _typed(value, (int, float)) and math.isfinite(value)


def parse_settings(data: dict, where: str) -> dict:
    """Keyword arguments of ``Workspace`` (all but ``path``) from a parsed
    cockpit.toml: profile, agent, budget_s, seed, program, fix_attempts, approval_gate,
    pipeline, noise_runs, keep_threshold, early_abort, abort_after, abort_margin, network.
    Raises SettingsError naming ``where`` for a value of the wrong type."""
    for key in data:
        if key not in KNOWN_KEYS:
            raise SettingsError(f"{where}: unknown key {key!r}{nearest(key, KNOWN_KEYS)}; "
                                f"known: {', '.join(KNOWN_KEYS)}")
    profile, seed, budget = data.get("profile", "h100"), data.get("seed", 0), data.get("budget_s")
    program, fixes = data.get("program"), data.get("fix_attempts", DEFAULT_FIX_ATTEMPTS)
    if not isinstance(profile, str):
        raise SettingsError(f"{where}: profile must be a string")
    if profile not in PROFILE_NAMES:
        raise SettingsError(f"{where}: unknown profile {profile!r}{nearest(profile, PROFILE_NAMES)}; "
                            f"known: {', '.join(PROFILE_NAMES)}")
    if not _typed(seed, (int,)):
        raise SettingsError(f"{where}: seed must be an integer")
    if program is not None and (not isinstance(program, str) or not program.strip()):
        raise SettingsError(f"{where}: program must be a program name or a path")
    if not _typed(fixes, (int,)) or fixes < 0:
        raise SettingsError(f"{where}: fix_attempts must be an integer, 0 or more")
    if budget is not None and (not _finite(budget) or budget <= 0):
        raise SettingsError(f"{where}: budget_s must be a positive, finite number of seconds")
    gate = data.get("approval_gate", False)
    if not isinstance(gate, bool):
        raise SettingsError(f"{where}: approval_gate must be true or false")
    pipeline = data.get("pipeline", True)
    if not isinstance(pipeline, bool):
        raise SettingsError(f"{where}: pipeline must be true or false")
    early = data.get("early_abort", False)
    if not isinstance(early, bool):
        raise SettingsError(f"{where}: early_abort must be true or false")
    network = data.get("network", True)
    if not isinstance(network, bool):
        raise SettingsError(f"{where}: network must be true or false (false: runs without a network)")
    noise = data.get("noise_runs", DEFAULT_NOISE_RUNS)
    if not _typed(noise, (int,)) or noise < 0:
        raise SettingsError(f"{where}: noise_runs must be an integer, 0 (off) or more")
    numbers = {}
    for key, default, low, high in (("keep_threshold", 0.0, 0.0, None), ("abort_after", 0.3, 0.0, 1.0),
                                    ("abort_margin", 0.05, 0.0, None)):
        value = data.get(key, default)
        if not _finite(value) or value < low or (high is not None and value > high):
            bounds = f"between {low:g} and {high:g}" if high is not None else f"{low:g} or more"
            raise SettingsError(f"{where}: {key} must be a finite number, {bounds}")
        numbers[key] = float(value)
    return dict(profile=profile, agent=parse_agent(data.get("agent"), where),
                budget_s=None if budget is None else float(budget),
                seed=seed, program=program, fix_attempts=fixes, approval_gate=gate,
                pipeline=pipeline, noise_runs=noise, early_abort=early, network=network, **numbers)
