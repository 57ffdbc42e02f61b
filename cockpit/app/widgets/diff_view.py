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

    def show_experiment(self, experiment: int, description: str = "") -> bool:
        """Show a kept proposal (True), or say it was not seen here (False)."""
        proposal = self.proposals.get(experiment)
        if proposal is not None:
            self._show(proposal, "selected")
            return True
        self.shown = None
        self.border_title = f"diff · exp {experiment}"
        self._set(Text.assemble((description, "bold"), "\n", (_unseen(experiment), "dim")), "")
        return False

    def _show(self, proposal: Proposal, how: str) -> None:
        self.shown = proposal
        self.border_title = f"diff · exp {proposal.experiment} · {how}"
        body = proposal.diff.rstrip("\n") or "(empty diff)"
        self._set(Text(proposal.description, style="bold"), body)
        self.scroll_home(animate=False)

    def _set(self, description: Text, diff: str) -> None:
        self.query_one("#diff-description", Static).update(description)
        syntax = Syntax(diff, "diff", theme=SYNTAX_THEME, word_wrap=False, background_color="default")
        self.query_one("#diff-body", Static).update(syntax if diff else "")


def _unseen(experiment: int) -> str:
    if experiment == 0:
        return "the baseline: train.py as it was"
    return "this cockpit did not see its proposal (it ran before it opened): see records.jsonl"
