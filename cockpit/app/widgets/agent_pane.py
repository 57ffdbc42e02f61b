"""The agent's side of the session: proposals, rejected replies, notes, actions.

A bounded RichLog, newest at the bottom: each ProposalReady's description,
each ProposalRejected's reason (the message that went back to the agent for a
re-ask), every EngineMessage (warnings and errors stand out), each steering
note the human sent and each control the engine says it applied.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from cockpit.events import EngineMessage, ProposalReady, ProposalRejected

MESSAGE_STYLES = {"info": "dim", "warning": "yellow", "error": "bold red"}


def changed_lines(diff: str) -> int:
    """Lines added or removed by a unified diff (file headers not counted)."""
    return sum(
        1 for line in diff.splitlines() if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    )


class AgentPane(RichLog):
    """What the agent proposed, what was sent back to it, and what the engine said."""

    def __init__(self, *, max_lines: int = 1000, id: str | None = None) -> None:
        super().__init__(max_lines=max_lines, wrap=True, highlight=False, markup=False, min_width=20, id=id)
        self.border_title = "agent"

    def add_proposal(self, event: ProposalReady) -> None:
        self.write(
            Text.assemble((f"exp {event.experiment} ", "bold"), ("proposal ", "cyan"), event.description,
                          (f"  ({changed_lines(event.diff)} changed lines)", "dim"))
        )

    def add_rejection(self, event: ProposalRejected) -> None:
        self.write(
            Text.assemble((f"exp {event.experiment} ", "bold"), (f"rejected (attempt {event.attempt}): ", "yellow"),
                          event.reason.strip())
        )

    def add_message(self, event: EngineMessage) -> None:
        label = "" if event.level == "info" else f"{event.level}: "
        self.write(Text(label + event.text, style=MESSAGE_STYLES.get(event.level, "")))

    def add_steer(self, text: str) -> None:
        """A steering note the human sent to the agent."""
        self.write(Text.assemble(("note to the agent: ", "bold magenta"), text))

    def add_action(self, text: str) -> None:
        """A control the engine applied (veto, force-keep, approve, gate, revert)."""
        self.write(Text.assemble(("applied: ", "bold magenta"), text))
