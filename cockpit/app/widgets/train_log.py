"""The live training log: step lines of the running experiment and other output.

A bounded RichLog: each line is rendered once when written (no redraw of the
whole text per line) and the oldest lines fall off past ``max_lines``.
"""

from __future__ import annotations

from rich.rule import Rule
from rich.text import Text
from textual.widgets import RichLog

from cockpit.events import StepLogged


def format_step(event: StepLogged) -> str:
    """One progress line: step, progress, loss, tokens/s, MFU and budget left."""
    return (
        f"step {event.step:05d} {event.progress_pct:5.1f}% │ loss {event.loss:.6f} │ "
        f"{event.tok_per_s:,.0f} tok/s │ mfu {event.mfu:.1f}% │ {event.remaining_s:.0f}s left"
    )


class TrainLog(RichLog):
    """Scrolling, bounded log of step lines, run output and engine notes."""

    def __init__(self, *, max_lines: int = 2000, id: str | None = None) -> None:
        super().__init__(max_lines=max_lines, wrap=False, highlight=False, markup=False, id=id)
        self.border_title = "log"

    def add_step(self, event: StepLogged) -> None:
        """Append one StepLogged as its step line."""
        self.write(Text(format_step(event), no_wrap=True))

    def add_line(self, text: str, style: str = "") -> None:
        """Append one line of plain text (never parsed as markup)."""
        self.write(Text(text, style=style, no_wrap=True))

    def add_rule(self, title: str) -> None:
        """Append a separator line with a title (a new run, a session event)."""
        self.write(Rule(Text(title, style="bold"), align="left", style="dim"))
