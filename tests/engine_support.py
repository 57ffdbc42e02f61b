"""Helpers for engine tests: a workspace with the fake train.py / prepare.py, a
scripted agent, SEARCH/REPLACE reply builders, and a session runner."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Optional

from cockpit.agents.base import AgentExhausted, NoFix, ProposalContext
from cockpit.engine.ratchet import Engine, SessionConfig
from cockpit.store.repo import init_repo
from cockpit.store.settings import Settings
from cockpit.store.workspace import GITIGNORE, TRACKED, Workspace, load_workspace

SETTING_NAMES = {f.name for f in dataclasses.fields(Settings)}  # fast_config's overrides that are settings

FAKES = Path(__file__).parent / "fakes"


def make_workspace(root: Path, train_py: Optional[str] = None, toml: str = 'profile = "tiny"\n') -> Workspace:
    """A committed workspace at ``root`` whose train.py/prepare.py are the fakes."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(train_py or (FAKES / "train.py").read_text())
    (root / "prepare.py").write_text((FAKES / "prepare.py").read_text())
    (root / "program.md").write_text("# program\nTry learning rates.\n")
    (root / "cockpit.toml").write_text(toml)
    (root / ".gitignore").write_text(GITIGNORE)
    init_repo(root, TRACKED, "workspace")
    return load_workspace(root)


def reply(old: str, new: str, description: str = "change", filename: str = "train.py") -> str:
    """A one-block SEARCH/REPLACE reply."""
    return (f"Description: {description}\n\n{filename}\n```python\n<<<<<<< SEARCH\n{old}\n"
            f"=======\n{new}\n>>>>>>> REPLACE\n```\n")


def blocks(description: str, *edits: tuple[str, str]) -> str:
    """A reply with one SEARCH/REPLACE block per (old, new) pair."""
    body = "".join(f"<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n" for old, new in edits)
    return f"Description: {description}\n\ntrain.py\n```python\n{body}```\n"


def set_line(name: str, old_value: str, new_value: str, comment: str, description: str = "") -> str:
    """Reply changing ``NAME = old  # comment`` of the fake train.py to ``new``."""
    return reply(f"{name} = {old_value}  # {comment}", f"{name} = {new_value}  # {comment}",
                 description or f"{name} {old_value} -> {new_value}")


LR_COMMENT = "Muon learning rate (the fake's val_bpb depends on it)"
MODE_COMMENT = "ok | crash | hang | hang_child | nan | oom | silent | ignore_term | grandkids | setsid_grandkid | escapee"
DEPTH_COMMENT = "number of layers (unused by the fake)"


def lr(old: str, new: str) -> str:
    return set_line("MATRIX_LR", old, new, LR_COMMENT)


def mode(new: str, old: str = '"ok"') -> str:
    return set_line("MODE", old, f'"{new}"', MODE_COMMENT, description=f"mode {new}")


def line(name: str, value: str, comment: str) -> str:
    """A hyper-parameter line of the fake train.py, e.g. ``line("MODE", '"ok"', MODE_COMMENT)``."""
    return f"{name} = {value}  # {comment}"


def crash_on_change() -> str:
    """The fake train.py, made to crash whenever MATRIX_LR, DEPTH or STEPS differ from
    the baseline: every move of the offline agent crashes."""
    source = (FAKES / "train.py").read_text()
    anchor = "STEPS = 5  # progress lines printed\n"
    return source.replace(anchor, anchor + 'if (MATRIX_LR, DEPTH, STEPS) != (0.04, 4, 5):\n    MODE = "crash"\n')


def idea(context: ProposalContext) -> int:
    """Which proposal of the session ``context`` asks for, the same in the serial and the
    pipelined loop: 1 for the first after the baseline, 2 for the next, ... (the results
    rows that are not fix attempts, plus the run in flight when it is asked ahead). A
    proposal asked again (superseded, or after a veto) is asked for the same idea."""
    return sum(1 for row in context.history if " (fix " not in row.description) + len(context.in_flight)


def current(name: str, train_py: str) -> str:
    """The value of hyper-parameter ``name`` in ``train_py`` (the fake's ``NAME = value  # ...``)."""
    found = re.search(rf"^{name} = (.*?)  # ", train_py, re.M)
    assert found, f"no {name} line in train.py"
    return found.group(1)


def to(name: str, new: str, comment: str, description: str = "") -> Callable[[ProposalContext], str]:
    """A reply, made when asked, setting ``name`` to ``new`` in the train.py the agent is
    shown (described ``NAME old -> new`` unless ``description``): the same idea whichever
    keep it is asked against."""
    return lambda context: set_line(name, current(name, context.train_py), new, comment, description)


def lr_to(new: str, description: str = "") -> Callable[[ProposalContext], str]:
    return to("MATRIX_LR", new, LR_COMMENT, description)


def after(event: asyncio.Event, then) -> Callable[[ProposalContext], object]:
    """A reply that answers ``then`` (a reply, or one made from the context) once ``event``
    is set: an ask still in flight when the test acts (the serial loop cancels it; asked
    ahead, it answers late and is re-applied or set aside)."""
    async def answer(context: ProposalContext) -> str:
        await event.wait()
        return then(context) if callable(then) else then
    return answer


class ScriptedAgent:
    """Returns ``replies`` (then raises AgentExhausted); keeps every context.

    ``replies`` is a list, answered in call order, or a dict keyed by what is asked
    (``idea``: the n-th proposal of the session), which answers the same in the serial
    and the pipelined loop, where the next proposal is asked while a run trains and asked
    again when a keep makes it stale. A reply that is callable is called with the
    context (``lr_to``: an edit of the train.py shown; ``after``: one that answers once an
    event is set). A reply that is ``None`` means: wait forever (to test Stop while
    proposing); an exception instance is raised (AgentFatal, ...). Fix attempts take
    their replies from ``fixes`` (NoFix when it is None or used up). ``usages``, when
    given, are set as ``last_usage`` one per call, as an LLM agent does. ``asked`` is
    set at every call.
    """

    name = "scripted"

    def __init__(self, replies, fixes: Optional[list] = None, usages: Optional[list] = None) -> None:
        self.replies = dict(replies) if isinstance(replies, dict) else list(replies)
        self.fixes = None if fixes is None else list(fixes)
        self.usages = usages
        self.contexts: list[ProposalContext] = []
        self.asked = asyncio.Event()

    def asks(self, **fields) -> list[ProposalContext]:
        """The contexts whose fields have these values (``experiment=2``, ``fix_attempt=1``, ...)."""
        return [c for c in self.contexts if all(getattr(c, k) == v for k, v in fields.items())]

    async def propose(self, context: ProposalContext) -> str:
        self.contexts.append(context)
        self.asked.set()
        if self.usages is not None:
            self.last_usage = self.usages.pop(0)
        if context.fix_attempt:
            if not self.fixes:
                raise NoFix("scripted: no fix")
            text = self.fixes.pop(0)
        elif isinstance(self.replies, dict):
            text = self.replies.get(idea(context), AgentExhausted("script finished"))
        else:
            if not self.replies:
                raise AgentExhausted("script finished")
            text = self.replies.pop(0)
        if callable(text):
            text = text(context)
        if asyncio.iscoroutine(text):
            text = await text
        if isinstance(text, BaseException):
            raise text
        if text is None:
            await asyncio.Event().wait()
        return text


def fast_config(tag: str = "t1", **overrides) -> SessionConfig:
    """A SessionConfig for tests: tiny budget, short hard-limit grace and kill grace, every
    other setting at the default users run (cockpit.store.settings: pipelining on, a noise
    floor of 3 baseline re-runs); the overrides that name a setting go into its ``settings``
    (a test about the serial loop or a session without a noise floor says so there)."""
    settings = dict(budget_s=0.2)
    settings.update({k: overrides.pop(k) for k in list(overrides) if k in SETTING_NAMES})
    values = dict(tag=tag, hard_limit_grace_s=1.5, kill_grace_s=0.5, settings=Settings(**settings))
    values.update(overrides)
    return SessionConfig(**values)


async def run_session(ws: Workspace, agent, config: SessionConfig,
                      on_event: Optional[Callable[[Engine, object], None]] = None) -> tuple[str, list]:
    """Run one session; returns (reason, events). ``on_event(engine, event)`` may send commands."""
    events: list = []
    engine: Engine

    def emit(event) -> None:
        events.append(event)
        if on_event is not None:
            on_event(engine, event)

    engine = Engine(ws, config, agent, emit)
    reason = await asyncio.wait_for(engine.run(), timeout=60)
    return reason, events


def of_type(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def process_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processes_in(directory: Path) -> list[int]:
    """Pids of live processes whose working directory is ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(entry / "cwd").resolve() == directory and process_alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


# ------------------------------------------- kill -9 of a headless engine --


def cockpit_argv() -> list[str]:
    """The argv that starts the cockpit CLI of this interpreter's environment."""
    script = Path(sys.executable).parent / "cockpit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cockpit.cli"]


def marked(marker: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                found.append(int(entry.name)) if state != "Z" else None
        except OSError:
            continue
    return found


def die_headless(ws: Path, phase: str, moment: int, marker: str, slow: Path) -> None:
    """Run a headless session that is killed (a real SIGKILL for "during-training",
    else the COCKPIT_FAULT hook) at ``phase`` of experiment ``moment``."""
    env = {k: v for k, v in os.environ.items() if k != "COCKPIT_FAULT"}
    env["FAKE_SLOW_FILE"] = str(slow)
    if phase != "during-training":
        env["COCKPIT_FAULT"] = f"{phase}@{moment}"
    elif moment == 0:
        slow.touch()
    # "while-proposing" is a phase of the serial loop only: pipelined, the agent is asked while the
    # previous run trains, which the "during-training" kills cover
    serial = ["--no-pipeline"] if phase == "while-proposing" else []
    argv = cockpit_argv() + ["--workspace", str(ws), "--headless", "--tag", "t1", "--budget", "0.2",
                             "--max-experiments", "6", "--run-command", f"{sys.executable} -u train.py {marker}",
                             *serial]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    watchdog = threading.Timer(90, proc.kill)
    watchdog.start()
    try:
        for text in proc.stdout:
            if phase == "during-training" and text.startswith(f"[exp {moment}] proposal:"):
                slow.touch()  # this experiment's run will be slow
            if phase == "during-training" and text.startswith(f"[exp {moment}] step"):
                os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() in (137, -signal.SIGKILL), f"the engine was not killed at {phase}@{moment}"
    finally:
        watchdog.cancel()
        slow.unlink(missing_ok=True)


def restart_headless(ws: Path, marker: str) -> subprocess.CompletedProcess:
    """A second headless session (tag t2, 2 experiments) on what the dead one left."""
    env = {k: v for k, v in os.environ.items() if k != "COCKPIT_FAULT"}
    argv = cockpit_argv() + ["--workspace", str(ws), "--headless", "--tag", "t2", "--budget", "0.2",
                             "--max-experiments", "2", "--run-command", f"{sys.executable} -u train.py {marker}"]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
