"""The cockpit's chrome around the panes: the screen (a focus change repaints only the
widgets whose look depends on it), the footer (recomposed only when its keys change)
and the pane keys (1-6 and F1-F5).
"""

from __future__ import annotations

from typing import Optional

from textual.binding import Binding
from textual.reactive import Reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

# (pane, label) in key order 1-6; the widget with the pane's id takes the focus when it is picked.
PANES = (
    ("results", "Results"),
    ("curves", "Curves"),
    ("staircase", "Staircase"),
    ("diff", "Diff"),
    ("agent", "Agent"),
    ("program", "Program"),
)


class KeysFooter(Footer):
    """Textual's Footer, recomposed only when the keys it shows change. Textual's own mounts
    every key anew on each change of the focus (every pane key) and of the screen stack."""

    def __init__(self, *, show_command_palette: bool = True) -> None:
        super().__init__(show_command_palette=show_command_palette)
        self._shown: Optional[tuple] = None  # the keys of the last compose
        self._check_due = False

    def bindings_changed(self, screen: Screen) -> None:
        """Recompose after the next refresh if the keys shown differ (once for a burst of changes)."""
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._check_due:
            self._check_due = True
            self.call_after_refresh(self._recompose_if_changed)

    async def _recompose_if_changed(self) -> None:
        self._check_due = False
        shown = tuple((binding.key, binding.action, binding.description, enabled, tooltip)
                      for _, binding, enabled, tooltip in self.screen.active_bindings.values()
                      if binding.show or binding.action == "command_palette")
        if shown != self._shown:
            self._shown = shown
            await self.recompose()


class CockpitScreen(Screen):
    """The app's screen. A change of the focus does not repaint all of it, as Textual's screen
    does (every pane key at 160x48 and up): the widgets whose look depends on the focus (the
    :focus border, a cursor) repaint themselves when their styles change."""

    focused: Reactive[Optional[Widget]] = Reactive(None, repaint=False)


def pane_bindings() -> list[Binding]:
    """1-6 (when no text widget has the focus) and F1-F5 (anywhere) pick a pane; the pane bar
    names them, so the footer keeps its room for the controls."""
    bindings = []
    for key, (pane, label) in enumerate(PANES, start=1):
        bindings.append(Binding(str(key), f"show_pane('{pane}')", label, show=False))
        if key <= 5:  # F6 and up are controls
            bindings.append(Binding(f"f{key}", f"show_pane('{pane}')", label, show=False, priority=True))
    return bindings
