"""The live training log: step lines of the running experiment and other output.

A bounded RichLog: each line is rendered once when written (no redraw of the
whole text per line) and the oldest lines fall off past ``max_lines``.

Lines are written at most ``1 / FLUSH_INTERVAL_S`` times a second: a line
that comes after a quiet spell is written at once, later ones wait for the
next flush, which writes them all in order. Consecutive step lines waiting
for a flush are one line, the newest step (the curves keep every step), so a
flood of steps costs one line per flush however fast it comes; every other
line is kept (a one-line text is rendered as RichLog.write would, minus its
per-line overhead). ``flush()`` writes what waits now. A flush repaints the log and
its scrollbar only: the log's growing scrollable size does not lay out the
whole screen (Textual's default), and it scrolls to the end in the same frame.
"""

from __future__ import annotations

import time
from typing import Optional, Union

from rich.cells import cell_len
from rich.rule import Rule
from rich.segment import Segment
from rich.text import Text
from textual.geometry import Size
from textual.reactive import Reactive
from textual.strip import Strip
from textual.timer import Timer
from textual.widgets import RichLog

from cockpit.events import StepLogged

FLUSH_INTERVAL_S = 0.1  # seconds between two writes to the log, at the most

Entry = Union[StepLogged, Text, Rule]


def format_step(event: StepLogged) -> str:
    """One progress line: step, progress, loss, tokens/s, MFU and budget left."""
    return (
        f"step {event.step:05d} {event.progress_pct:5.1f}% │ loss {event.loss:.6f} │ "
        f"{event.tok_per_s:,.0f} tok/s │ mfu {event.mfu:.1f}% │ {event.remaining_s:.0f}s left"
    )


class TrainLog(RichLog):
    """Scrolling, bounded log of step lines, run output and engine notes."""

    # A new line changes only the log's own scrollable size: it repaints the log and its
    # scrollbar (watch_virtual_size), not a layout of the whole screen as Widget's does.
    # The log's height is set by the layout (never "auto"), so no other widget moves.
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    def __init__(self, *, max_lines: int = 2000, id: str | None = None) -> None:
        super().__init__(max_lines=max_lines, wrap=False, highlight=False, markup=False, id=id)
        self.border_title = "log"
        self._pending: list[Entry] = []  # lines waiting for the next flush, oldest first
        self._flush_timer: Optional[Timer] = None
        self._flushed_at = -FLUSH_INTERVAL_S  # time.monotonic() of the last flush
        self._flushing = False

    def watch_virtual_size(self, size: Size) -> None:
        """The scrollbar shown or not (that change does lay out), its thumb, the scroll range;
        once per flush, not once per line."""
        if not self._flushing:
            self._scroll_update(size)

    def add_step(self, event: StepLogged) -> None:
        """Append one StepLogged as its step line (replacing a step line still waiting)."""
        if self._pending and isinstance(self._pending[-1], StepLogged):
            self._pending[-1] = event
        else:
            self._pending.append(event)
        self._schedule()

    def add_line(self, text: str, style: str = "") -> None:
        """Append one line of plain text (never parsed as markup)."""
        self._pending.append(Text(text, style=style, no_wrap=True))
        self._schedule()

    def add_rule(self, title: str) -> None:
        """Append a separator line with a title (a new run, a session event)."""
        self._pending.append(Rule(Text(title, style="bold"), align="left", style="dim"))
        self._schedule()

    def flush(self) -> None:
        """Write the lines that wait for a flush now."""
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None
        pending, self._pending = self._pending, []
        self._flushed_at = time.monotonic()
        if not pending:
            return
        entries = [Text(format_step(e), no_wrap=True) if isinstance(e, StepLogged) else e for e in pending]
        if not self._size_known:  # RichLog keeps them until it has a size, then writes them
            for entry in entries:
                self.write(entry)
            return
        if self.max_lines and len(entries) > self.max_lines:
            entries = entries[-self.max_lines:]  # each is a line at least: the older ones would fall off
        self._flushing = True  # the scrollbar and the scroll position once, after the last line
        try:
            for entry in entries:
                if isinstance(entry, Text) and "\n" not in entry.plain:
                    self._append(self._line_of(entry))
                else:
                    self.write(entry, scroll_end=False)
            self._trim()
        finally:
            self._flushing = False
        self._scroll_update(self.virtual_size)
        if self.auto_scroll:  # now: the scroll range is right already (no layout to wait for),
            self.scroll_end(animate=False, immediate=True, x_axis=False)  # one repaint, not two

    def _line_of(self, text: Text) -> Strip:
        """The strip RichLog.write makes of a one-line Text (tabs expanded, not wrapped or cropped),
        without its measuring, copying and resizing for every line."""
        text.expand_tabs()
        console = self.app.console
        width = max(min(cell_len(text.plain), self.scrollable_content_region.width), self.min_width)
        options = console.options.update(overflow="ignore", no_wrap=True).update_width(width)
        lines = list(Segment.split_lines(console.render(text, options)))
        return Strip(lines[0]) if lines else Strip.blank(width)

    def _append(self, strip: Strip) -> None:
        self.lines.append(strip)
        self._widest_line_width = max(self._widest_line_width, strip.cell_length)

    def _trim(self) -> None:
        """The oldest lines off past max_lines; the scrollable size; a repaint (as RichLog.write does)."""
        excess = len(self.lines) - self.max_lines if self.max_lines else 0
        if excess > 0:
            self._start_line += excess
            self.lines = self.lines[excess:]
        self.virtual_size = Size(self._widest_line_width, len(self.lines))
        self.refresh()

    def _schedule(self) -> None:
        if self._flush_timer is not None:
            return
        wait = self._flushed_at + FLUSH_INTERVAL_S - time.monotonic()
        if wait <= 0 or not self.is_attached:
            self.flush()
        else:
            self._flush_timer = self.set_timer(wait, self._flush_due, name="log-flush")

    def _flush_due(self) -> None:
        self._flush_timer = None  # it has fired: nothing to stop
        self.flush()
