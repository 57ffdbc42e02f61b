"""A bounded, evenly thinned record of a stream: every stride-th item and the newest.

A run can print millions of step lines; what is drawn of it (the app's curve)
and what is kept for a cockpit that attaches late (the daemon's replay) must not
grow with them. ``Strided`` holds every item until ``limit``; when a new item
takes it past ``limit``, every other item goes and the stride doubles, so it
holds the 0th, stride-th, 2 x stride-th, ... item seen, plus the newest one
when that is off the stride: at most ``limit`` + 1 items, evenly spaced, in
order, the newest last. Used by ``cockpit.serve.wire.ReplayHistory`` and
``cockpit.app.widgets.live_curves.RunCurve``.
"""

from __future__ import annotations

from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


class Strided(Generic[T]):
    """The items appended so far, thinned evenly (module docstring). ``seen``: items
    appended; ``stride``: items seen per item kept on the stride. Raises ValueError
    for a ``limit`` under 2."""

    __slots__ = ("items", "limit", "stride", "seen", "_tail")

    def __init__(self, limit: int) -> None:
        if limit < 2:
            raise ValueError(f"a strided record needs a limit of 2 or more (got {limit})")
        self.items: list[T] = []
        self.limit = limit
        self.stride = 1
        self.seen = 0
        self._tail = False  # the last item is the newest, off the stride

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def append(self, item: T) -> list[T]:
        """Add the newest item; returns the items dropped to stay within ``limit`` + 1
        (the previous newest when it was off the stride, and every other one when full)."""
        dropped = [self.items.pop()] if self._tail else []
        self.items.append(item)
        self._tail = self.seen % self.stride != 0
        self.seen += 1
        on_stride = len(self.items) - self._tail
        if on_stride > self.limit:
            kept, odd, tail = self.items[0:on_stride:2], self.items[1:on_stride:2], self.items[on_stride:]
            if not tail and on_stride % 2 == 0:  # the newest is at an odd place: it stays, off the new stride
                tail = [odd.pop()]
            self.items, self._tail = kept + tail, bool(tail)
            self.stride *= 2
            dropped += odd
        return dropped
