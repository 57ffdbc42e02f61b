"""The agent interface: anything that turns a ProposalContext into a reply text.

A reply is text in the SEARCH/REPLACE edit format of ``cockpit.rules.edits``. The
engine parses, applies and validates it; on an ``EditError`` it asks again with
``ProposalContext.last_error`` set to the error message (written for the model).
The offline agent, an LLM client and test doubles all implement ``Agent``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, runtime_checkable

from cockpit.row import Row

MAX_STEERING_NOTES = 20  # steering notes the agent is shown, the newest (all stay in records.jsonl)
MAX_NOTE_CHARS = 2_000  # characters of one steering note: a longer one is refused by the engine


@dataclass(frozen=True)
class ProposalContext:
    """Everything an agent sees when asked for the next edit.

    ``train_py`` and ``program_md`` are the current file texts (program.md read
    from disk at the moment of asking: hot reload); ``history`` the results rows
    so far (cockpit.row ``Row``, as results.tsv holds them: unnumbered, short
    hashes; oldest first, earlier sessions of the workspace included);
    ``last_error`` the EditError message of the previous reply when this is a
    re-ask (else None); ``attempt`` counts re-asks for this experiment (0 = first ask).
    ``kept_diffs`` holds unified diffs of the most recent kept changes (oldest
    first); ``crash_log_tail`` the last lines of the previous run's log when it
    crashed and this is a fix attempt (``fix_attempt`` >= 1 of ``max_fix_attempts``, else 0);
    ``steering`` the human's notes, oldest first; ``vetoed`` the descriptions of
    proposals the human vetoed before they trained (not results rows; do not
    propose them again), oldest first; ``in_flight`` the descriptions of
    experiments training right now whose results are not known yet (a pipelined
    ask: the reply is applied to the best kept train.py, the ``train_py`` shown,
    and re-applied onto a newer keep if one of them is kept; do not propose the
    same change).
    """

    train_py: str
    program_md: str
    history: tuple[Row, ...] = ()
    last_error: Optional[str] = None
    attempt: int = 0
    experiment: int = 0
    kept_diffs: tuple[str, ...] = ()
    crash_log_tail: Optional[str] = None
    fix_attempt: int = 0
    max_fix_attempts: int = 0
    steering: tuple[str, ...] = ()
    vetoed: tuple[str, ...] = ()
    in_flight: tuple[str, ...] = ()


class AgentExhausted(Exception):
    """The agent has nothing left to propose (the engine ends the session)."""


class NoFix(Exception):
    """The agent declines a fix attempt (``ProposalContext.fix_attempt`` >= 1): the
    engine gives up on the crashed idea and resets to the last kept commit. The
    message says why (e.g. the offline agent does not fix crashes)."""


class AgentFatal(Exception):
    """The agent cannot work until a person acts (bad key, unknown model, retries
    exhausted on a dead server). The engine pauses with this message; Resume retries."""


@runtime_checkable
class Agent(Protocol):
    """Proposes one edit of train.py at a time.

    ``name`` identifies the agent in records ("offline", a model name, ...).
    ``propose`` returns the reply text; it may raise ``AgentExhausted``,
    ``AgentFatal``, or ``NoFix`` for a fix attempt. An agent that calls a model may
    expose ``last_usage`` (a dict or an object with ``prompt_tokens``,
    ``completion_tokens``, ``cost_usd`` (None when unknown), ``latency_s``,
    ``retries``) for its latest call; the engine reads it after each reply. An
    agent with an ``observe(event)`` method (the optuna agent) is registered as an
    observer of the engine's events (cockpit.events: RowLogged tells it each
    outcome as its row is written); it must not raise.
    """

    name: str

    async def propose(self, context: ProposalContext) -> str:
        """Return a reply in the edit format (see cockpit.rules.edits) for ``context``."""
        ...
