"""The proposal pane: an experiment's description and its diff of train.py.

It shows the newest ProposalReady (the pending or running proposal; it stays
through its run) until a results row is selected, then that row's proposal if
this cockpit saw it. Proposals are kept by experiment number (the newest
``max_kept``). The diff is highlighted with rich's Syntax ("diff" lexer) and
scrolls both ways.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple, Optional

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import ScrollableContainer
from textual.widgets import Static

from cockpit.events import ProposalReady

SYNTAX_THEME = "ansi_dark"  # ANSI colours: follows the terminal's palette


class Proposal(NamedTuple):
    experiment: int
    description: str
    diff: str


class DiffView(ScrollableContainer, can_focus=True):
    """Description and highlighted diff of one proposal."""

    def __init__(self, *, max_kept: int = 1000, id: str | None = None) -> None:
        super().__init__(id=id)
        self.proposals: OrderedDict[int, Proposal] = OrderedDict()
        self.max_kept = max_kept
        self.shown: Optional[Proposal] = None
        self.border_title = "diff"

    def compose(self) -> ComposeResult:
        yield Static(Text("no proposal yet", style="dim"), id="diff-description")
        yield Static("", id="diff-body")

    def add_proposal(self, event: ProposalReady) -> None:
        """Keep a new proposal and show it."""
        proposal = Proposal(event.experiment, event.description, event.diff)
        self.proposals.pop(event.experiment, None)
        self.proposals[event.experiment] = proposal
        while len(self.proposals) > self.max_kept:
            self.proposals.popitem(last=False)
        self._show(proposal, "proposal")

    def show_experiment(self, experiment: int, description: str = "", details: Optional[Text] = None) -> bool:
        """Show a kept proposal (True), or say it was not seen here (False); ``details``
        (timings, cost, output tail) go between the description and the diff."""
        proposal = self.proposals.get(experiment)
        if proposal is not None:
            self._show(proposal, "selected", details)
            return True
        self.shown = None
        self.border_title = f"diff · exp {experiment}"
        head = Text.assemble((description, "bold"), "\n")
        if details is not None:
            head.append_text(details)
        self._set(head.append(_unseen(experiment), style="dim"), "")
        return False

    def _show(self, proposal: Proposal, how: str, details: Optional[Text] = None) -> None:
        self.shown = proposal
        self.border_title = f"diff · exp {proposal.experiment} · {how}"
        body = proposal.diff.rstrip("\n") or "(empty diff)"
        head = Text(proposal.description, style="bold")
        if details is not None:
            head.append("\n").append_text(details)
        self._set(head, body)
        self.scroll_home(animate=False)

    def _set(self, description: Text, diff: str) -> None:
        self.query_one("#diff-description", Static).update(description)
        syntax = Syntax(diff, "diff", theme=SYNTAX_THEME, word_wrap=False, background_color="default")
        self.query_one("#diff-body", Static).update(syntax if diff else "")


def _unseen(experiment: int) -> str:
    if experiment == 0:
        return "the baseline: train.py as it was"
    return "this cockpit did not see its proposal (it ran before it opened): see records.jsonl"
