"""The running best: which kept commit stands after each results row.

One pure fold over results rows, used by the engine's session state
(cockpit.engine.session ``SessionState``), the cockpit's staircase and status bar,
and ``cockpit report``, so that they agree after every keep, forced keep,
revert and crash. A row is anything with ``status``, ``val_bpb``, ``commit``
and ``description`` attributes (cockpit.row ``Row``, and the views that wrap
one: the app's ``TableRow``, the report's ``ReportRow``) and, where it has
one, an ``experiment`` number. The rules, from cockpit.engine.actions and
README "Human controls":

- A **session starts** at the first row and at each later baseline row: a row
  numbered 0, or, for rows without a number (results.tsv read alone, as an
  upstream session writes it), a row whose commit cell or description reads
  ``baseline`` in any case (marks in square brackets at the end of the
  description, such as " [recovered]", left out). The stack of keeps is
  emptied there: each session starts from its own baseline.
- A **keep** with a val_bpb (finite, > 0) is pushed on the stack of keeps and
  is the incumbent from then on, even when it is worse than the one before: a
  forced keep (" [forced]", or " [forced keep of #n]" for an earlier,
  discarded row appended again as a keep) is the reference the next run must
  beat. So is a confirmed, recovered or fix keep.
- A **revert**: a discard marked " [reverted]" on the incumbent's commit,
  with a keep below it, pops the incumbent; the keep before it stands again.
  The baseline is never popped.
- Anything else (discard, crash, a keep without a val_bpb) changes nothing.

The running best is therefore the incumbent's val_bpb, the number the next
run must beat, not the lowest val_bpb ever kept: after a revert or a forced
keep of a worse run the two differ, and everything shows the incumbent.
Statuses are read in any case (``KEEP``, ``Keep``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from cockpit.row import score_of

REVERTED = "[reverted]"
_MARKS = re.compile(r"(\s*\[[^\[\]]*\])+\s*$")


def status_of(row: Any) -> str:
    """The row's status, stripped and in lower case ("KEEP" reads "keep")."""
    return str(getattr(row, "status", "") or "").strip().lower()


def scored(row: Any) -> Optional[float]:
    """The row's val_bpb when it has one (finite and > 0; a crash row's 0.000000
    has none), else None. Bits per byte."""
    return score_of(getattr(row, "val_bpb", None))


def is_baseline(row: Any) -> bool:
    """True when the row's commit cell or description (without its trailing
    bracketed marks) reads "baseline", in any case."""
    commit = str(getattr(row, "commit", "") or "").strip().lower()
    description = _MARKS.sub("", str(getattr(row, "description", "") or "")).strip().lower()
    return commit == "baseline" or description == "baseline"


def starts_session(row: Any, index: int) -> bool:
    """True when ``row``, the ``index``-th of the rows folded, begins a session:
    the first row; a row numbered 0; a baseline row (``is_baseline``) when rows
    carry no number."""
    if index == 0:
        return True
    number = getattr(row, "experiment", None)
    if isinstance(number, int) and not isinstance(number, bool):
        return number == 0
    return is_baseline(row)


def _same_commit(a: Any, b: Any) -> bool:
    return str(a)[:7].lower() == str(b)[:7].lower()


@dataclass(frozen=True)
class Standing:
    """Where the ratchet stands after one row.

    ``best``: the incumbent's val_bpb in bits per byte (None before the
    session's first keep); ``commit``: the incumbent's commit as its row holds
    it ("" before); ``incumbent``: that row; ``baseline``: the session's first
    kept val_bpb; ``session``: the row's session, 0 for the first; ``change``:
    what the row did, "keep" (pushed), "revert" (popped ``reverted``) or ""
    (nothing); ``delta``: for a keep, its val_bpb minus the best before it
    (negative: an improvement; None for the session's first keep)."""

    best: Optional[float]
    commit: str
    incumbent: Any
    baseline: Optional[float]
    session: int
    change: str = ""
    delta: Optional[float] = None
    reverted: Any = None


class Ladder:
    """The fold, one row at a time (``step``); ``stack`` holds the session's kept
    rows, the baseline first and the incumbent last. ``running_best`` is the
    same fold over a whole list."""

    def __init__(self) -> None:
        self.stack: list = []
        self.session = -1
        self.rows = 0
        self.baseline: Optional[float] = None

    @property
    def best(self) -> Optional[float]:
        """The incumbent's val_bpb (None before the session's first keep)."""
        return scored(self.stack[-1]) if self.stack else None

    def step(self, row: Any) -> Standing:
        """Fold ``row`` in (the rules of the module docstring); returns the standing after it."""
        if starts_session(row, self.rows):
            self.session += 1
            self.stack, self.baseline = [], None
        self.rows += 1
        status, value = status_of(row), scored(row)
        change, delta, reverted = "", None, None
        if status == "keep" and value is not None:
            before = self.best
            delta = None if before is None else value - before
            self.stack.append(row)
            change = "keep"
            if self.baseline is None:
                self.baseline = value
        elif (status == "discard" and len(self.stack) > 1 and _same_commit(row_commit(row), row_commit(self.stack[-1]))
              and str(getattr(row, "description", "")).rstrip().endswith(REVERTED)):
            reverted = self.stack.pop()
            change = "revert"
        top = self.stack[-1] if self.stack else None
        return Standing(self.best, row_commit(top) if top is not None else "", top, self.baseline, self.session,
                        change, delta, reverted)


def row_commit(row: Any) -> str:
    """The row's commit as it holds it ("" when it has none)."""
    return str(getattr(row, "commit", "") or "")


def running_best(rows: Iterable[Any]) -> list[Standing]:
    """The standing after each of ``rows`` (oldest first): the running best
    val_bpb, the incumbent commit and row, the session's baseline, the session
    index and what the row changed (module docstring). Pure: ``rows`` are read,
    never changed."""
    ladder = Ladder()
    return [ladder.step(row) for row in rows]
