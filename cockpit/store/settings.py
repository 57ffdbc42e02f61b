"""Every session setting, declared once: ``Settings``.

Each field of ``Settings`` is one top-level key of cockpit.toml, with its type,
default, one-line meaning, the rule its value must meet and, where it has one,
its CLI flag. From that one declaration come:

- ``parse_settings``: cockpit.toml's top-level keys checked and typed
  (SettingsError naming the file and the key; an unknown key names the nearest);
- ``add_setting_flags`` / ``Settings.with_flags``: the CLI flags, which
  override the file only when typed;
- ``render_template``: the commented cockpit.toml ``cockpit init`` writes;
- ``settings_table``: the settings table of the README (tests/test_docs.py
  checks the README holds it as generated).

Adding a setting is one ``setting(...)`` field here; the engine then reads it
as ``config.settings.NAME``. The ``[agent]`` table has its own dataclass
(cockpit.store.agent_settings) with ``--agent``, ``--model``, ``--api-base``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Optional

from cockpit.store.agent_settings import AgentSettings, SettingsError, nearest, parse_agent
from cockpit.store.programs import is_name
from cockpit.rules.gpus import GpuSpecError, parse_gpus

__all__ = ["Settings", "Spec", "SettingsError", "AgentSettings", "parse_agent", "parse_settings", "PROFILE_NAMES",
           "add_setting_flags", "flag_settings", "render_template", "settings_table", "nearest"]

PROFILE_NAMES = ("cpu", "h100", "tiny")  # substrate/prepare.py's profiles; an upstream checkout has none


def count(text: str) -> int:
    """An integer, 0 or more (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer, 0 or more, got {text!r}")
    return value


def positive(kind: type) -> Callable[[str], Any]:
    """An argparse type: a finite number of ``kind`` greater than 0."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
        return value
    return parse


def gpus_value(value: Any) -> bool:
    """True for a ``gpus`` value cockpit.rules.gpus parses (an int >= 1 from TOML, or a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return False
    try:
        parse_gpus(str(value))
    except GpuSpecError:
        return False
    return True


def gpus_flag(text: str) -> str:
    """argparse type of ``--gpus``: the text when cockpit.rules.gpus parses it."""
    try:
        parse_gpus(text)
    except GpuSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def program_spec(spec: str) -> str:
    """``--program`` as the session takes it: a NAME as is, a PATH made absolute
    from the current directory (a PATH in cockpit.toml is relative to the workspace)."""
    return spec if is_name(spec) else str(Path(spec).expanduser().resolve())


@dataclass(frozen=True)
class Spec:
    """What is declared of one setting besides its name, type and default."""

    doc: str
    """One line: the template's comment, the flag's help, the README's meaning."""
    must: str
    """The rule a value meets, as the error says it: "<key> must be <must>"."""
    kind: type
    """bool, int, float or str (a float setting takes a TOML integer too)."""
    optional: bool = False
    """None (the key left out) is allowed: "not set"."""
    low: Optional[float] = None
    """Smallest allowed value (inclusive); ``above``: exclusive."""
    above: Optional[float] = None
    high: Optional[float] = None
    """Largest allowed value (inclusive)."""
    choices: tuple = ()
    """The allowed values (an unknown one names the nearest)."""
    flag: Optional[str] = None
    """The CLI flag: a value flag, or for a bool an on-switch (``--early-abort``)
    or an off-switch (``--no-pipeline``: ``off=True``)."""
    off: bool = False
    metavar: Optional[str] = None
    parse_flag: Optional[Callable[[str], Any]] = None
    """argparse type of a value flag (default: ``kind``)."""
    template: bool = True
    """Shown, commented out, in the cockpit.toml ``cockpit init`` writes."""
    example: Any = None
    """The template's value for a setting whose default is "not set"."""
    accept: Optional[Callable[[Any], bool]] = None
    """The rule of a setting no kind says (``gpus``: 8, "all" or "0,2,5"), instead of kind's."""

    def check(self, value: Any) -> bool:
        """True when ``value`` (from TOML) meets this setting's rule."""
        if value is None:
            return self.optional
        if self.accept is not None:
            return self.accept(value)
        if self.kind is bool:
            return isinstance(value, bool)
        if isinstance(value, bool) or not isinstance(value, (int, float) if self.kind is float else self.kind):
            return False
        if self.kind is str:
            return bool(value.strip()) and (not self.choices or value in self.choices)
        if self.kind is float and not math.isfinite(value):
            return False
        return not ((self.low is not None and value < self.low) or (self.above is not None and value <= self.above)
                    or (self.high is not None and value > self.high))


def setting(default: Any, spec: Spec) -> Any:
    """A ``Settings`` field: its default and its Spec."""
    return field(default=default, metadata={"spec": spec})


@dataclass(frozen=True)
class Settings:
    """The settings of a workspace (cockpit.toml) and of the session run on it
    (with the typed flags applied: ``with_flags``). Units: seconds for ``budget_s``,
    val_bpb for ``keep_threshold``, nats for ``abort_margin``."""

    profile: str = setting("h100", Spec(
        "harness profile (substrate/prepare.py)", "one of cpu, h100, tiny", str, choices=PROFILE_NAMES,
        template=False))
    budget_s: Optional[float] = setting(None, Spec(
        "training budget per run in seconds (default: the profile's TIME_BUDGET)",
        "a positive, finite number of seconds", float, optional=True, above=0.0, flag="--budget",
        metavar="SECONDS", parse_flag=positive(float), example=60))
    seed: int = setting(0, Spec("seed of the offline agent's move order and the optuna sampler", "an integer", int))
    program: Optional[str] = setting(None, Spec(
        "the program the agent reads: a shipped NAME (programs/NAME.md) or a PATH (default: program.md)",
        "a program name or a path", str, optional=True, flag="--program", metavar="NAME|PATH",
        parse_flag=program_spec, example="hyperparameters"))
    fix_attempts: int = setting(2, Spec(
        "fix attempts the agent gets after a crash, each its own experiment (0 = reset at once)",
        "an integer, 0 or more", int, low=0))
    approval_gate: bool = setting(False, Spec(
        "approval gate: every proposal waits for approve or veto in the cockpit (not headless)",
        "true or false", bool, flag="--approve"))
    pipeline: bool = setting(True, Spec(
        "ask for the next proposal while a run trains (false: the serial loop)",
        "true or false", bool, flag="--no-pipeline", off=True))
    noise_runs: int = setting(3, Spec(
        "baseline re-runs measuring the noise floor at session start (0 = off)",
        "an integer, 0 (off) or more", int, low=0, flag="--noise-runs", metavar="N", parse_flag=count))
    keep_threshold: float = setting(0.0, Spec(
        "fixed val_bpb improvement a keep must exceed (2 sigma of the noise floor when larger)",
        "a finite number, 0 or more", float, low=0.0))
    early_abort: bool = setting(False, Spec(
        "stop a run whose smoothed training loss clearly trails the incumbent's",
        "true or false", bool, flag="--early-abort"))
    abort_after: float = setting(0.3, Spec(
        "share of the budget trained before early abort may judge a run",
        "a finite number, between 0 and 1", float, low=0.0, high=1.0))
    abort_margin: float = setting(0.05, Spec(
        "smoothed training loss (nats) a run may trail the incumbent's by",
        "a finite number, 0 or more", float, low=0.0))
    gpus: Optional[str] = setting(None, Spec(
        "experiments in flight, one per GPU: N, all, or device indices 0,2,5 (more than one runs on Ray; "
        "default: 1, no Ray)", "a number of GPUs (1 or more), \"all\" or indices like \"0,2,5\"", str,
        optional=True, flag="--gpus", metavar="N|all|0,2,5", parse_flag=gpus_flag, accept=gpus_value, example=8))
    network: bool = setting(True, Spec(
        "runs of workspace code have a network (false: a network namespace of their own)",
        "true or false (false: runs without a network)", bool, flag="--no-network", off=True))

    def with_flags(self, args: argparse.Namespace) -> "Settings":
        """These settings with the flags typed in ``args`` applied (a flag wins only when typed)."""
        typed = {}
        for f in fields(self):
            spec, dest = f.metadata["spec"], flag_dest(f.metadata["spec"])
            value = getattr(args, dest, None) if dest else None
            if value is None or value is False:
                continue
            typed[f.name] = (not spec.off) if spec.kind is bool else value
        return replace(self, **typed)


def specs() -> list[tuple[str, Any, Spec]]:
    """(name, default, Spec) of every setting, in declaration order."""
    return [(f.name, f.default if f.default is not MISSING else None, f.metadata["spec"]) for f in fields(Settings)]


def flag_dest(spec: Spec) -> Optional[str]:
    """The argparse attribute of a setting's flag (``--no-pipeline``: ``no_pipeline``)."""
    return spec.flag[2:].replace("-", "_") if spec.flag else None


def flag_settings() -> list[tuple[str, str]]:
    """(argparse attribute, flag) of every setting that has a flag."""
    return [(flag_dest(spec), spec.flag) for _, _, spec in specs() if spec.flag]


def toml_value(value: Any) -> str:
    """``value`` as TOML writes it ("not set" for None)."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else repr(value)


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """The settings' flags on ``parser`` (default None/False: "not typed")."""
    for name, default, spec in specs():
        if not spec.flag:
            continue
        shown = "on" if default is True else "off" if default is False else toml_value(default)
        text = f"{spec.doc} (default: {name} in cockpit.toml, else {shown})"
        if spec.kind is bool:
            parser.add_argument(spec.flag, action="store_true", help=text)
        else:
            parser.add_argument(spec.flag, metavar=spec.metavar, type=spec.parse_flag or spec.kind, help=text)


def parse_settings(data: dict, where: str) -> tuple[Settings, AgentSettings]:
    """(Settings, AgentSettings) from a parsed cockpit.toml. Raises SettingsError
    naming ``where`` for an unknown key (and the nearest known one) or a value
    that breaks its setting's rule."""
    known = [name for name, _, _ in specs()] + ["agent"]
    for key in data:
        if key not in known:
            raise SettingsError(f"{where}: unknown key {key!r}{nearest(key, known)}; known: {', '.join(known)}")
    values = {}
    for name, default, spec in specs():
        value = data.get(name, default)
        if not spec.check(value):
            if spec.choices and isinstance(value, str):
                raise SettingsError(f"{where}: unknown {name} {value!r}{nearest(value, spec.choices)}; "
                                    f"known: {', '.join(spec.choices)}")
            raise SettingsError(f"{where}: {name} must be {spec.must}")
        values[name] = float(value) if spec.kind is float and value is not None else value
    return Settings(**values), parse_agent(data.get("agent"), where)


def render_template(profile: str, agent: str = "offline") -> str:
    """The cockpit.toml ``cockpit init`` writes: the profile, every other setting
    commented out at its default, and the ``[agent]`` table."""
    lines = [f'profile = "{profile}"']
    for name, default, spec in specs():
        if spec.template:
            lines.append(f"# {name} = {toml_value(spec.example if default is None else default)}".ljust(32)
                         + f"# {spec.doc}")
    return ("\n".join(lines) + "\n\n"
            f'[agent]\nname = "{agent}"' + " " * max(1, 23 - len(agent)) + "# offline | litellm | optuna | optuna+litellm\n"
            '# model = "openai/gpt-4o-mini"  # needed for litellm; API keys come only from the environment\n'
            '# api_base = "http://127.0.0.1:8000/v1"\n'
            "# timeout_s = 120\n# max_retries = 3\n# stream = true\n# temperature = 0.7\n")


def settings_table() -> str:
    """The README's settings table (markdown): key, flag, default, meaning."""
    rows = ["| cockpit.toml key | flag | default | meaning |", "|---|---|---|---|"]
    for name, default, spec in specs():
        flag = f"`{spec.flag}`" if spec.flag else ""
        shown = "not set" if default is None else f"`{toml_value(default)}`"
        rows.append(f"| `{name}` | {flag} | {shown} | {spec.doc} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m cockpit.store.settings: print the README table
    print(settings_table(), end="")
