"""How a session ends, for every engine (cockpit.engine.ratchet's, cockpit.engine.fleet's).

``EXPECTED_ERRORS`` are the refusals and failures a session ends on with one error line
(a bad workspace, a moved branch, a journal it cannot write, a run that cannot start...);
``session_reason`` turns a session's coroutine into its SessionEnded reason.
"""

from __future__ import annotations

from typing import Awaitable

from cockpit.engine.control import Stopped
from cockpit.engine.session import SessionError
from cockpit.events import EngineMessage, Emit
from cockpit.store.journal import JournalError
from cockpit.store.ledger import LedgerError
from cockpit.store.programs import ProgramError
from cockpit.store.repo import RepoError
from cockpit.store.workspace import WorkspaceError
from cockpit.training.run_result import RunnerError

EXPECTED_ERRORS = (SessionError, JournalError, RepoError, WorkspaceError, LedgerError, RunnerError, ProgramError)


async def session_reason(session: Awaitable[str], emit: Emit) -> str:
    """``session``'s own reason ("max-experiments", "agent-exhausted"), "stopped" when it
    raised Stopped, or "error: <message>" for an EXPECTED_ERRORS one (said first in one
    error line). Anything else propagates."""
    try:
        return await session
    except Stopped:
        return "stopped"
    except EXPECTED_ERRORS as exc:
        emit(EngineMessage(str(exc), "error"))
        return f"error: {exc}"
