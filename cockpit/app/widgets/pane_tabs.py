"""The pane bar: one line naming the panes and their keys, the shown one highlighted.

Shown below 160x48 only (there one pane fills the main area). It takes no
focus and needs no mouse: the keys 1-5 (or F1-F5) pick a pane; a click on a
name picks it too (``PaneTabs.Picked``).
"""

from __future__ import annotations

from typing import Sequence

from rich.text import Text
from textual import events
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

ACTIVE_STYLE, IDLE_STYLE = "bold reverse", "dim"


class PaneTabs(Widget):
    """``1 Results  2 Curves  ...`` with the active pane highlighted."""

    active: reactive[str] = reactive("")

    class Picked(Message):
        """A pane name was clicked."""

        def __init__(self, pane: str) -> None:
            super().__init__()
            self.pane = pane

    def __init__(self, panes: Sequence[tuple[str, str]], *, id: str | None = None) -> None:
        """``panes``: (pane, label) in key order."""
        super().__init__(id=id)
        self.panes = list(panes)
        self.active = self.panes[0][0] if self.panes else ""

    def _labels(self) -> list[tuple[str, str]]:
        return [(pane, f" {key} {label} ") for key, (pane, label) in enumerate(self.panes, start=1)]

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for pane, label in self._labels():
            text.append(label, style=ACTIVE_STYLE if pane == self.active else IDLE_STYLE)
            text.append(" ")
        return text

    def on_click(self, event: events.Click) -> None:
        x = 0
        for pane, label in self._labels():
            if x <= event.x < x + len(label):
                self.post_message(self.Picked(pane))
                return
            x += len(label) + 1
