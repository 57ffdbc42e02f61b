"""The noise floor and the keep rule that respects it.

A greedy ratchet on one number keeps noise: the same train.py, trained twice
for a fixed time budget, gives two val_bpb values (the number of steps varies
with the machine's speed, data order with the seed, kernels are not
bit-exact). Upstream keeps any strictly lower val_bpb; its own progress figure
ends on a kept "random seed 42 -> 137" step, and a re-test of a published
0.9697 configuration measured 0.9771 (autoresearch issues #131, #243, #278,
#466).

At session start the baseline is re-run ``noise_runs`` times (default 3);
``sigma`` is the sample standard deviation (n - 1 in the denominator) of the
baseline's val_bpb and its re-runs. A run then needs an improvement
``delta = best - val_bpb`` larger than ``threshold(n) = max(keep_threshold,
2 sigma / sqrt(n))`` where n is the number of runs averaged: one run at
first; a run that improves by more than ``CONFIRM_FROM`` sigma but by no
more than the threshold ("close") is run once more (a confirming re-run) and
kept only when the mean of its two runs clears ``threshold(2)``; one that
improves by less is a discard at once. With the noise floor off (``noise_runs = 0``)
and ``keep_threshold = 0`` this is upstream's strict rule. 2 sigma: a
one-sided test at about the 2.3 % level for one normal run against a fixed
reference.

Why re-run only above 1 sigma: the mean of two clears 2 sigma / sqrt 2 only
when the second run lands 2 sqrt 2 sigma - d better than the best, d the first
run's improvement. Even granting the first run's improvement as the true one,
that has the chance Phi(2 d / sigma - 2 sqrt 2): 0.2 % at d = 0, 3.4 % at 0.5
sigma, 20 % at 1 sigma, 50 % at sqrt 2 sigma, 88 % at 2 sigma (and under no
true improvement at all, 3.4 % at 1 sigma). Below 1 sigma a confirming run
(a whole budget) almost never changes the decision.

``KeepRule`` is the one place every caller takes a verdict from: the live
engine (cockpit.engine.session ``decide``, cockpit.engine.bookkeeping, cockpit.engine.measuring) and
the restart path (cockpit.engine.reconcile, which rebuilds the rule of a dead session
from disk with ``rule_of_session``: the session's ``noise-floor`` record and
``keep_threshold`` from cockpit.toml). A close call needs a confirming re-run;
where none can happen (the restart, a re-run that crashed) the run stands
alone and is judged on its single value against ``threshold(1)``: a discard,
marked " [within noise]", never a keep on a value inside the noise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Optional, Sequence



@dataclass(frozen=True)
class NoiseFloor:
    """val_bpb of the baseline and its re-runs (bits per byte), in run order, and
    their holdout_bpb (cockpit.rules.holdout; empty when the harness scores none)."""

    runs: tuple[float, ...]
    holdout_runs: tuple[float, ...] = ()

    @property
    def sigma(self) -> float:
        """Sample standard deviation of ``runs`` (0.0 for fewer than two)."""
        return statistics.stdev(self.runs) if len(self.runs) >= 2 else 0.0

    @property
    def holdout_sigma(self) -> float:
        """Sample standard deviation of ``holdout_runs`` (0.0 for fewer than two)."""
        return statistics.stdev(self.holdout_runs) if len(self.holdout_runs) >= 2 else 0.0

    def as_record(self, tag: str) -> dict:
        """The records.jsonl object ``{"kind": "noise-floor", "tag", "runs", "sigma",
        "mean", "holdout_runs", "holdout_sigma"}``."""
        return {"kind": "noise-floor", "tag": tag, "runs": list(self.runs), "sigma": self.sigma,
                "mean": statistics.fmean(self.runs) if self.runs else None,
                "holdout_runs": list(self.holdout_runs), "holdout_sigma": self.holdout_sigma}


CONFIRM_FROM = 1.0
"""A first run's improvement, in sigma, above which a close run gets a confirming re-run."""


def threshold(keep_threshold: float, sigma: float, runs: int = 1) -> float:
    """Improvement (bits per byte) a mean of ``runs`` runs must exceed to be kept:
    ``max(keep_threshold, 2 sigma / sqrt(runs))``."""
    return max(keep_threshold, 2.0 * sigma / math.sqrt(max(runs, 1)))


@dataclass(frozen=True)
class Judgement:
    """The noise-aware verdict on a finished run: ``verdict`` "keep", "discard"
    or "confirm" (close: run it once more); ``delta`` = best - mean val_bpb
    (positive: better), ``threshold`` it had to clear, ``sigma``, the ``runs``
    averaged, ``delta_sigma`` = -delta / sigma (None when sigma is 0: the
    table's "how many sigma worse", negative when better)."""

    verdict: str
    delta: float
    threshold: float
    sigma: float
    runs: tuple[float, ...]

    @property
    def delta_sigma(self) -> Optional[float]:
        return -self.delta / self.sigma if self.sigma > 0 else None

    def as_record(self) -> dict:
        return {"delta": self.delta, "threshold": self.threshold, "sigma": self.sigma, "runs": list(self.runs),
                "delta_sigma": self.delta_sigma, "verdict": self.verdict}


def judge(best: float, runs: Sequence[float], keep_threshold: float, sigma: float,
          can_confirm: bool = True) -> Judgement:
    """Judge finite val_bpb ``runs`` of one commit (1 or 2) against ``best``.
    "confirm" only for a single close run that improved by more than
    ``CONFIRM_FROM`` sigma, when ``can_confirm`` and sigma > 0."""
    mean = statistics.fmean(runs)
    delta = best - mean
    bar = threshold(keep_threshold, sigma, len(runs))
    if delta > bar:
        verdict = "keep"
    elif delta > CONFIRM_FROM * sigma and len(runs) == 1 and can_confirm and sigma > 0:
        verdict = "confirm"
    else:
        verdict = "discard"
    return Judgement(verdict, delta, bar, sigma, tuple(runs))


WITHIN_NOISE, CONFIRMED = " [within noise]", " [confirmed]"


def noise_mark(status: str, judged: Optional[Judgement]) -> str:
    """The description mark a judged run's row gets: " [within noise]" for a
    discard that improved by no more than the threshold, " [confirmed]" for a
    keep on the mean of two runs, "" otherwise (no judgement: baseline, crash)."""
    if judged is None:
        return ""
    if status == "discard" and judged.delta > 0:
        return WITHIN_NOISE
    if status == "keep" and len(judged.runs) > 1:
        return CONFIRMED
    return ""


@dataclass(frozen=True)
class KeepRule:
    """The keep rule of one session: ``keep_threshold`` (bits per byte, from
    cockpit.toml) and ``sigma`` (bits per byte, the noise floor's; 0.0 when none
    was measured). ``KeepRule()`` is upstream's strict rule: keep iff lower."""

    keep_threshold: float = 0.0
    sigma: float = 0.0

    def decide(self, val_bpb: Optional[float], best: Optional[float], confirm: Sequence[float] = (),
               can_confirm: bool = False) -> tuple[str, Optional[Judgement]]:
        """(status, judgement) of one run's finite ``val_bpb`` (None: "crash")
        against ``best``, the incumbent's val_bpb (None before the baseline:
        "keep", no judgement). ``confirm`` holds a confirming re-run's value,
        averaged in. Status "keep", "discard" or, only with ``can_confirm``, for a
        single close run when sigma > 0, "confirm" (run it once more). Without
        ``can_confirm`` a close run is a discard (see the module docstring)."""
        if val_bpb is None or not math.isfinite(val_bpb):
            return "crash", None
        if best is None:
            return "keep", None
        judged = judge(best, (val_bpb, *confirm), self.keep_threshold, self.sigma, can_confirm=can_confirm)
        return judged.verdict, judged


def rule_of_session(records: Sequence[dict], tag: str, keep_threshold: float) -> KeepRule:
    """The keep rule session ``tag`` ran under, rebuilt from its records
    (records.jsonl's objects, oldest first): ``sigma`` from its last
    ``noise-floor`` record (the record's
    ``sigma``, else the sample standard deviation of its ``runs``; 0.0 when it
    has none: the floor was off or never measured), ``keep_threshold`` as
    cockpit.toml says now (the session read it from there too). Pure."""
    floors = [r for r in records if r.get("kind") == "noise-floor" and r.get("tag") == tag]
    sigma = 0.0
    if floors:
        value, raw = floors[-1].get("sigma"), floors[-1].get("runs")
        runs = [float(v) for v in (raw if isinstance(raw, list) else [])
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            sigma = float(value)
        elif len(runs) >= 2:
            sigma = statistics.stdev(runs)
    return KeepRule(keep_threshold, sigma)
