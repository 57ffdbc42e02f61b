"""Every append of a session, in order, even when the disk fails.

``WriteQueue.store(what, write)`` runs ``write`` (an append to results.tsv,
records.jsonl or the journal) at once, or, behind an earlier failure, queues it;
an append that fails (OSError: disk full, read-only) is queued with one error line
and the engine pauses (cockpit.engine.startup ``SessionStart.preflight``) until
``flush`` writes the queue on resume: nothing is lost and nothing is written out
of order (docs/crash-safety.md).
"""

from __future__ import annotations

from typing import Callable

from cockpit.events import Emit, EngineMessage


class WriteQueue:
    """The session's appends, written now or queued in order (module docstring)."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.pending: list[tuple[str, Callable[[], None]]] = []

    def store(self, what: str, write: Callable[[], None]) -> None:
        """Run ``write`` (an append to ``what``) now, or queue it behind earlier
        failed ones; an OSError queues it and says so (the engine then pauses)."""
        if not self.pending:
            try:
                write()
                return
            except OSError as exc:
                self._failed(what, exc)
        self.pending.append((what, write))

    def flush(self) -> bool:
        """Write the queued appends in order; False (and a message) when one fails again."""
        while self.pending:
            what, write = self.pending[0]
            try:
                write()
            except OSError as exc:
                self._failed(what, exc)
                return False
            self.pending.pop(0)
        return True

    def _failed(self, what: str, exc: OSError) -> None:
        self.emit(EngineMessage(f"cannot write {what}: {exc.strerror or exc}; nothing is lost: it is written "
                                "when you resume", "error"))
