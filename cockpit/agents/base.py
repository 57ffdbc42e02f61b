"""The agent interface: anything that turns a ProposalContext into a reply text.

A reply is text in the SEARCH/REPLACE edit format of ``cockpit.edits``. The
engine parses, applies and validates it; on an ``EditError`` it asks again with
``ProposalContext.last_error`` set to the error message (written for the model).
The offline agent, an LLM client and test doubles all implement ``Agent``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, runtime_checkable


@dataclass(frozen=True)
class HistoryRow:
    """One past results.tsv row: ``status`` keep/discard/crash, ``val_bpb`` in bits
    per byte (0.0 for a crash), and its one-line ``description``."""

    status: str
    val_bpb: float
    description: str


@dataclass(frozen=True)
class ProposalContext:
    """Everything an agent sees when asked for the next edit.

    ``train_py`` and ``program_md`` are the current file texts; ``history`` the
    results rows so far (oldest first, earlier sessions of the workspace included);
    ``last_error`` the EditError message of the previous reply when this is a
    re-ask (else None); ``attempt`` counts re-asks for this experiment (0 = first ask).
    """

    train_py: str
    program_md: str
    history: tuple[HistoryRow, ...] = ()
    last_error: Optional[str] = None
    attempt: int = 0
    experiment: int = 0


class AgentExhausted(Exception):
    """The agent has nothing left to propose (the engine ends the session)."""


@runtime_checkable
class Agent(Protocol):
    """Proposes one edit of train.py at a time.

    ``name`` identifies the agent in records ("offline", a model name, ...).
    ``propose`` returns the reply text; it may raise ``AgentExhausted``.
    """

    name: str

    async def propose(self, context: ProposalContext) -> str:
        """Return a reply in the edit format (see cockpit.edits) for ``context``."""
        ...
