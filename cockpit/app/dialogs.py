"""The cockpit's two small dialogs: a yes/no confirmation and the steering note.

Both are modal screens: while one is open only its own keys work (and
``ctrl+c``); the app's control keys are off (see ``controls.py``).
"""

from __future__ import annotations

from typing import Optional

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class ConfirmScreen(ModalScreen[bool]):
    """``question``? y sends, n or escape does not. Dismisses with True or False."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-title")
            if self.detail:
                yield Static(self.detail, classes="dialog-detail")
            yield Static("[b]y[/b] yes   [b]n[/b] / [b]esc[/b] no", classes="dialog-keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class SteerScreen(ModalScreen[Optional[str]]):
    """A one-line note for the agent: enter sends (dismisses with the text), escape cancels (None)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Steer the agent", classes="dialog-title")
            yield Static("A note it sees with every following proposal.", classes="dialog-detail")
            yield Input(placeholder="e.g. try a longer warmdown; leave the model size alone", id="steer-input")
            yield Static("[b]enter[/b] send   [b]esc[/b] cancel", classes="dialog-keys")

    @on(Input.Submitted, "#steer-input")
    def _send(self, message: Input.Submitted) -> None:
        self.dismiss(message.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
