"""Early abort (opt-in): stop a run that is clearly behind the incumbent.

Each run's training loss is smoothed with an exponential moving average
(``SMOOTHING`` = 0.9 per step line, bias-corrected as in Adam, Kingma & Ba
2015) and set against the incumbent's (the last kept run's) smoothed loss at
the same training time, interpolated linearly between its step lines.
Training time is ``progress_pct / 100 x budget`` (the substrate's progress is
the share of the time budget trained). After ``warmup`` (share of the budget,
default 0.3: learning-rate warm-up and early noise are over), a run whose
smoothed loss trails the incumbent's by more than ``margin`` nats for
``PATIENCE`` step lines in a row is stopped: it ends as a discard marked
" [aborted early]", its record's ``abort`` says why, when, and how many
seconds of budget were saved. Loss is not val_bpb: a run that trains slower
but would generalise better can be cut; hence opt-in, with a margin.
"""

from __future__ import annotations

import bisect
from typing import Optional

from cockpit.events import StepLogged

SMOOTHING = 0.9  # EMA factor per step line
PATIENCE = 3  # step lines in a row beyond the margin before stopping


def smoothed(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(time s, loss) points, in order, as (time, bias-corrected EMA of the loss)."""
    out, ema = [], 0.0
    for i, (t, loss) in enumerate(points, start=1):
        ema = SMOOTHING * ema + (1 - SMOOTHING) * loss
        out.append((t, ema / (1 - SMOOTHING ** i)))
    return out


def at(curve: list[tuple[float, float]], t: float) -> Optional[float]:
    """``curve`` (sorted by time) at ``t``, linearly interpolated; None outside it."""
    if not curve or t < curve[0][0] or t > curve[-1][0]:
        return None
    times = [p[0] for p in curve]
    i = bisect.bisect_left(times, t)
    if times[i] == t or i == 0:
        return curve[i][1]
    (t0, y0), (t1, y1) = curve[i - 1], curve[i]
    return y0 + (y1 - y0) * (t - t0) / (t1 - t0) if t1 > t0 else y1


class LossWatch:
    """Watches one run against ``incumbent`` ((time s, loss) step points of the
    last kept run). ``feed(step)`` returns None, or once the reason to stop;
    ``verdict`` then holds {reason, at_s, saved_s, loss, incumbent_loss}."""

    def __init__(self, incumbent: list[tuple[float, float]], budget_s: float, warmup: float = 0.3,
                 margin: float = 0.05) -> None:
        self.incumbent = smoothed(incumbent)
        self.budget_s, self.warmup, self.margin = budget_s, warmup, margin
        self.points: list[tuple[float, float]] = []
        self._ema, self._behind = 0.0, 0
        self.verdict: Optional[dict] = None

    def feed(self, step: StepLogged) -> Optional[str]:
        """Take one step line; the reason to stop the run now, else None."""
        if self.verdict is not None:
            return None
        t = step.progress_pct / 100.0 * self.budget_s
        self.points.append((t, step.loss))
        self._ema = SMOOTHING * self._ema + (1 - SMOOTHING) * step.loss
        mine = self._ema / (1 - SMOOTHING ** len(self.points))
        theirs = at(self.incumbent, t)
        if theirs is None or t < self.warmup * self.budget_s:
            return None
        self._behind = self._behind + 1 if mine - theirs > self.margin else 0
        if self._behind < PATIENCE:
            return None
        reason = (f"smoothed training loss {mine:.4f} trails the incumbent's {theirs:.4f} by more than "
                  f"{self.margin:g} at {t:.0f} s of {self.budget_s:.0f} s")
        self.verdict = {"reason": reason, "at_s": t, "saved_s": max(0.0, self.budget_s - t), "loss": mine,
                        "incumbent_loss": theirs}
        return reason
