"""How engine events reach the app: one Textual message per event, steps in batches.

The engine calls ``Relay.emit(event)`` from the event loop or from a thread.
Every event but StepLogged becomes an ``EngineEvent``. Steps become a
``StepsLogged`` batch: while a batch is posted but not yet handled, further
steps join it instead of posting more messages, so a burst of 5,000 steps is
one message (the log shows its newest step) and no step is lost (the curves
plot them all). A batch closes when any other event is posted, so the order of
events is kept: a step is never handled before the RunStarted that precedes it.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

from textual.message import Message

from cockpit.events import Event, StepLogged


class EngineEvent(Message):
    """One engine event (anything but a step) delivered to the app."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class StepsLogged(Message):
    """Steps logged since the previous batch was handled, oldest first (never empty)."""

    def __init__(self, first: StepLogged) -> None:
        super().__init__()
        self.steps: list[StepLogged] = [first]
        self.open = True  # accepting more steps until handled or followed by another event


class Relay:
    """The engine's ``emit``: turns events into messages posted with ``post``."""

    def __init__(self, post: Callable[[Message], object]) -> None:
        self._post = post
        self._lock = threading.Lock()
        self._batch: Optional[StepsLogged] = None

    def emit(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, StepLogged):
                if self._batch is not None and self._batch.open:
                    self._batch.steps.append(event)
                    return
                self._batch = StepsLogged(event)
                message: Message = self._batch
            else:
                if self._batch is not None:
                    self._batch.open = False
                self._batch = None
                message = EngineEvent(event)
        self._post(message)

    def take(self, batch: StepsLogged) -> list[StepLogged]:
        """Close ``batch`` (later steps start a new one) and return its steps."""
        with self._lock:
            batch.open = False
            return list(batch.steps)
