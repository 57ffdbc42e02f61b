"""One results row: the type every layer shares.

results.tsv (cockpit.store.results) writes and reads it, the engine keeps its
session's rows as it (cockpit.engine.session ``SessionState``), the agent is
shown them (cockpit.agents.base ``ProposalContext.history``), and the report
and the app's table wrap it in narrow views that add what they derive
(cockpit.tools.report.model ``ReportRow``, cockpit.app.widgets.results_table
``TableRow``) instead of declaring the fields again. The running best
(cockpit.rules.standing) folds any sequence of them.

It sits at the bottom of the layers (next to cockpit.events) so that the app,
which imports no engine or store code, holds the same type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class Row:
    """One results row, the upstream five columns and the session's number for it.

    ``commit``: as the source holds it (7 hex characters in results.tsv, the full
    hash in the engine, "" for a row the agent is shown that has none, such as a
    vetoed proposal); ``val_bpb``: validation bits per byte, 0.0 when the row has
    none (a crash: results.tsv's ``0.000000``; ``score`` tells); ``memory_gb``: peak
    GPU memory in GB (0.0 for a crash); ``status``: keep, discard or crash (the
    agent's view also shows "vetoed" and "running"); ``description``: one line;
    ``experiment``: the session's number for the row (0 is the baseline), None
    where results.tsv is read alone (upstream files number nothing; the running
    best then tells sessions apart by their baseline rows)."""

    commit: str
    val_bpb: float
    memory_gb: float
    status: str
    description: str
    experiment: Optional[int] = None

    @property
    def score(self) -> Optional[float]:
        """The row's val_bpb when it has one, else None: a crash row has none
        whatever its cell holds, and 0.000000, NaN or inf is none (``score_of``)."""
        return None if self.status.strip().lower() == "crash" else score_of(self.val_bpb)


def score_of(value: Any) -> Optional[float]:
    """``value`` as a val_bpb in bits per byte when it is one (a finite number > 0,
    not a bool), else None: a crash row's 0.000000, NaN, inf and text have none."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None
