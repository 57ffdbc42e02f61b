"""Helpers for engine tests: a workspace with the fake train.py / prepare.py, a
scripted agent, SEARCH/REPLACE reply builders, and a session runner."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Callable, Optional

from cockpit.agents.base import AgentExhausted, ProposalContext
from cockpit.ratchet import Engine, SessionConfig
from cockpit.repo import init_repo
from cockpit.workspace import GITIGNORE, TRACKED, Workspace, load_workspace

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


def set_line(name: str, old_value: str, new_value: str, comment: str, description: str = "") -> str:
    """Reply changing ``NAME = old  # comment`` of the fake train.py to ``new``."""
    return reply(f"{name} = {old_value}  # {comment}", f"{name} = {new_value}  # {comment}",
                 description or f"{name} {old_value} -> {new_value}")


LR_COMMENT = "Muon learning rate (the fake's val_bpb depends on it)"
MODE_COMMENT = "ok | crash | hang | hang_child | nan"
DEPTH_COMMENT = "number of layers (unused by the fake)"


def lr(old: str, new: str) -> str:
    return set_line("MATRIX_LR", old, new, LR_COMMENT)


def mode(new: str, old: str = '"ok"') -> str:
    return set_line("MODE", old, f'"{new}"', MODE_COMMENT, description=f"mode {new}")


class ScriptedAgent:
    """Returns ``replies`` in order (then raises AgentExhausted); keeps every context.

    A reply that is ``None`` means: wait forever (to test Stop while proposing).
    """

    name = "scripted"

    def __init__(self, replies: list[Optional[str]]) -> None:
        self.replies = list(replies)
        self.contexts: list[ProposalContext] = []

    async def propose(self, context: ProposalContext) -> str:
        self.contexts.append(context)
        if not self.replies:
            raise AgentExhausted("script finished")
        text = self.replies.pop(0)
        if text is None:
            await asyncio.Event().wait()
        return text


def fast_config(tag: str = "t1", **overrides) -> SessionConfig:
    """A SessionConfig for tests: tiny budget, short hard-limit grace and kill grace."""
    values = dict(tag=tag, budget_s=0.2, hard_limit_grace_s=1.5, kill_grace_s=0.5)
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
