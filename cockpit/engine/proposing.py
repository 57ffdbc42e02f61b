"""Ask the agent for an edit, re-asking with the error text when it is invalid.

One ask plus up to ``max_reasks`` re-asks; each reply is parsed, applied to
train.py and checked (``cockpit.rules.edits``). An ``EditError`` message goes back to
the agent as ``ProposalContext.last_error``. After the last failed re-ask the
proposal is dropped (``Outcome.proposal`` is None) and train.py stays as it was.
The agent's ``last_usage`` is read after every reply and summed (cockpit.rules.usage).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable, Optional

from cockpit.agents.base import Agent, ProposalContext
from cockpit.rules.edits import EditError, Proposal, apply_reply
from cockpit.rules.usage import add_usage, read_usage


@dataclass(frozen=True)
class Outcome:
    """Result of asking: the valid ``proposal`` and ``new_source`` of train.py (both
    None when dropped), every reply and error message, ``propose_s`` seconds spent
    and the agent's summed ``usage`` over the replies (None for an agent without
    ``last_usage``)."""

    proposal: Optional[Proposal]
    new_source: Optional[str]
    replies: tuple[str, ...]
    errors: tuple[str, ...]
    propose_s: float
    usage: Optional[dict] = None


async def obtain_proposal(
    agent: Agent,
    context: ProposalContext,
    max_reasks: int,
    on_reject: Callable[[str, int], None],
) -> Outcome:
    """Ask ``agent`` until a reply applies cleanly to ``context.train_py``.

    ``on_reject(reason, attempt)`` is called for each invalid reply (attempt 1 =
    the first ask). Exceptions of the agent (AgentExhausted, AgentFatal, NoFix)
    propagate; the usage of replies before one is lost with it.
    """
    started = time.monotonic()
    replies: list[str] = []
    errors: list[str] = []
    usage: Optional[dict] = None
    for attempt in range(max_reasks + 1):
        asked = replace(context, last_error=errors[-1] if errors else None, attempt=attempt)
        reply = await agent.propose(asked)
        replies.append(reply)
        usage = add_usage(usage, read_usage(agent))
        try:
            proposal, new_source = apply_reply(reply, context.train_py)
        except EditError as exc:
            errors.append(str(exc))
            on_reject(str(exc), attempt + 1)
            continue
        return Outcome(proposal, new_source, tuple(replies), tuple(errors), time.monotonic() - started, usage)
    return Outcome(None, None, tuple(replies), tuple(errors), time.monotonic() - started, usage)
