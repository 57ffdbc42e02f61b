"""The program editor: the session's program file (program.md), edited in place.

A TextArea (markdown) over the file the engine reads before every proposal, so
saving is all it takes for the next proposal to see an edit. ``ctrl+o`` saves
(nano's "write out"; ``ctrl+s`` is flow control in some terminals): atomically,
to a temporary file in the same directory, fsynced, then ``os.replace``, the
file's mode kept.

A worker watches the file's *parent directory* (watchfiles; a watch on the file
itself dies after the first rename-style save, such as vim's, ``sed -i`` or
``os.replace``) and posts ``DiskChanged``; the handler reads the file and
decides. Nothing on disk ever silently replaces a local edit:

- the disk holds what the buffer was loaded from or saved as: nothing to do;
- the buffer has no local edits: it takes the new text (the cursor stays);
- the buffer has local edits: *conflict*. The local text stays and a notice
  says so; ``ctrl+r`` reloads from disk (dropping the edits; ``ctrl+z`` undoes
  it) and ``ctrl+o`` overwrites the disk with the buffer.

The pane title says which state the buffer is in: saved, modified, conflict,
missing (the file is gone; ``ctrl+o`` writes it back).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Optional

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static, TextArea
from textual.worker import Worker, WorkerState
from watchfiles import awatch

STATE_STYLES = {"saved": "green", "modified": "yellow", "conflict": "bold red", "missing": "bold red"}
CONFLICT_NOTICE = (
    "Changed on disk while you were editing; your text is kept. "
    "ctrl+r: reload from disk (drops your edits) · ctrl+o: overwrite it with yours"
)


def read_program(path: Path) -> Optional[str]:
    """The file's text, or None when it is missing or unreadable (not UTF-8 included)."""
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``:
    a reader (the engine, an editor) sees the old file or the new one, never half of one."""
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


class ProgramEditor(Vertical):
    """The program file in a TextArea, saved atomically and kept in step with the disk."""

    BINDINGS = [
        Binding("ctrl+o", "save", "Save program"),
        Binding("ctrl+r", "reload", "Reload from disk"),
    ]

    state: reactive[str] = reactive("saved")

    class DiskChanged(Message):
        """The watcher saw the file change (or appear, or go)."""

    class Saved(Message):
        """ctrl+o wrote the buffer to the file; ``sha256`` (hex) of the bytes written.
        The app tells the engine (AcceptProgram): a person confirmed this text."""

        def __init__(self, sha256: str) -> None:
            super().__init__()
            self.sha256 = sha256

    def __init__(self, path: Path, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.path = path.resolve()  # a symlink's target is what gets read, watched and written
        self.shown_name = path.name
        text = read_program(self.path)
        self._disk = text or ""  # the disk text the buffer was last in step with
        self._missing = text is None
        self._conflict = False
        self._stop_watching = threading.Event()

    def compose(self) -> ComposeResult:
        yield Static(CONFLICT_NOTICE, id="program-notice")
        yield TextArea(self._disk, language="markdown", id="program-text")

    def on_mount(self) -> None:
        self.query_one("#program-notice").display = False
        self._update_state()
        self.watch_state(self.state)
        self._watch()

    def on_unmount(self) -> None:
        self._stop_watching.set()  # the watch thread checks it every 10 ms

    @property
    def text_area(self) -> TextArea:
        return self.query_one("#program-text", TextArea)

    @property
    def text(self) -> str:
        return self.text_area.text

    def focus(self, scroll_visible: bool = True) -> "ProgramEditor":
        """Picking the pane focuses the text."""
        self.text_area.focus(scroll_visible)
        return self

    # ------------------------------------------------------------- actions --

    def action_save(self) -> None:
        text = self.text
        try:
            write_atomically(self.path, text)
        except OSError as error:
            self.notify(f"Could not save {self.path}: {error}", title="program", severity="error", timeout=10)
            return
        self._disk, self._conflict, self._missing = text, False, False
        self._update_state()
        self.post_message(self.Saved(hashlib.sha256(text.encode("utf-8")).hexdigest()))
        self.notify(f"Saved {self.shown_name}: the next proposal reads it.", title="program")

    def action_reload(self) -> None:
        """Take the disk's text, dropping local edits (undoable with ctrl+z)."""
        text = read_program(self.path)
        if text is None:
            self.notify(f"{self.path} is missing or unreadable.", title="program", severity="warning")
            return
        self._take(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "reload":  # in the footer only while there is something to reload
            return self.state in ("modified", "conflict")
        return True

    # ------------------------------------------------------------ the disk --

    @work(exclusive=True, group="program-watch", exit_on_error=False)
    async def _watch(self) -> None:
        name = self.path.name
        async for _changes in awatch(
            self.path.parent, recursive=False, watch_filter=lambda _change, path: os.path.basename(path) == name,
            debounce=50, step=10, stop_event=self._stop_watching, rust_timeout=1000,
        ):
            self.post_message(self.DiskChanged())

    @on(Worker.StateChanged)
    def _watch_failed(self, message: Worker.StateChanged) -> None:
        if message.worker.group == "program-watch" and message.state == WorkerState.ERROR:
            self.notify(f"Not watching {self.path} for changes: {message.worker.error}", title="program",
                        severity="warning", timeout=10)

    @on(DiskChanged)
    def _disk_changed(self) -> None:
        if not self.path.exists():
            self._missing = True
        else:
            self._compare(read_program(self.path))
        self._update_state()

    def _compare(self, theirs: Optional[str]) -> None:
        """Decide what a new disk text means for the buffer (see the module's docstring)."""
        self._missing = theirs is None
        if theirs is None:
            return
        if theirs == self.text:  # the disk caught up with the buffer (our own save, too)
            self._disk, self._conflict = theirs, False
        elif theirs == self._disk:  # back to the text the local edits started from
            self._conflict = False
        elif self.text == self._disk:  # no local edits
            self._take(theirs)
        elif not self._conflict:
            self._conflict = True
            self.notify(CONFLICT_NOTICE, title=f"{self.shown_name} changed on disk", severity="warning", timeout=10)

    def _take(self, text: str) -> None:
        """Replace the buffer with ``text`` (the disk's), keeping the cursor where it can be."""
        area = self.text_area
        row, column = area.cursor_location
        area.replace(text, (0, 0), area.document.end, maintain_selection_offset=False)
        row = min(row, area.document.line_count - 1)
        area.move_cursor((row, min(column, len(area.document.get_line(row)))))
        self._disk, self._conflict, self._missing = text, False, False
        self._update_state()

    # --------------------------------------------------------------- state --

    @on(TextArea.Changed, "#program-text")
    def _edited(self) -> None:
        if self._conflict and self.text == read_program(self.path):
            self._disk, self._conflict = self.text, False  # edited into what the disk holds
        self._update_state()

    def _update_state(self) -> None:
        if self._conflict:
            self.state = "conflict"
        elif self._missing:
            self.state = "missing"
        else:
            self.state = "saved" if self.text == self._disk else "modified"

    def watch_state(self, state: str) -> None:
        self.border_title = f"program · {self.shown_name} · [{STATE_STYLES[state]}]{state}[/]"
        self.query_one("#program-notice").display = state == "conflict"
        self.set_class(state == "conflict", "-conflict")
        self.refresh_bindings()
