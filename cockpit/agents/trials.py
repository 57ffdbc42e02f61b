"""The optuna agent's trials as train.py sees them: the Optuna distribution of each
dimension of the search space (cockpit.rules.search_space), the constants' values
of a trial and back, the batch check that foresees a crash, and the reply that
writes a trial into train.py (cockpit.agents.sampler asks and tells them).
"""

from __future__ import annotations

import math
import re
from typing import Any, Optional

from cockpit.rules.search_space import Dimension

_TRIAL = re.compile(r"^(?:TPE|CMA-ES|RANDOM) #(\d+):")


def trial_number(description: str) -> Optional[int]:
    """The trial number a row's description names (``TPE #12: ...``), or None."""
    match = _TRIAL.match(description.strip())
    return int(match.group(1)) if match else None


def tokens_per_sequence(values: dict[str, float]) -> Optional[float]:
    """TOTAL_BATCH_SIZE / DEVICE_BATCH_SIZE (tokens per optimizer step over sequences
    per pass: the sequence length times the passes of gradient accumulation), or
    None when train.py has not both."""
    total, device = values.get("TOTAL_BATCH_SIZE"), values.get("DEVICE_BATCH_SIZE")
    return total / device if total and device else None


def batch_fits(values: dict[str, float], known_good: float) -> bool:
    """Whether train.py's assert ``TOTAL_BATCH_SIZE % (DEVICE_BATCH_SIZE * MAX_SEQ_LEN)
    == 0`` surely holds for ``values``, knowing only that it held at the study's
    start with tokens per sequence ``known_good`` (MAX_SEQ_LEN lives in prepare.py,
    which the agent does not read): the new ratio must be a whole multiple of
    ``known_good``, so the sequence length still divides it. A value too
    conservative for a few valid points (fewer accumulation passes than at the
    start), never one that lets a crash through."""
    ratio = tokens_per_sequence(values)
    if ratio is None:
        return True
    return ratio >= known_good and (ratio / known_good).is_integer()


def distributions(space: list[Dimension]) -> dict[str, Any]:
    """The Optuna distribution of each dimension, by parameter name: ``pow2`` is
    searched in its exponent (``log2(NAME)``), ``beta`` in 1 - x on a log scale
    (``1-NAME``)."""
    from optuna.distributions import FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for d in space:
        if d.kind == "pow2":
            out[f"log2({d.name})"] = IntDistribution(int(math.log2(d.low)), int(math.log2(d.high)))
        elif d.kind == "beta":
            out[f"1-{d.name}"] = FloatDistribution(1.0 - d.high, 1.0 - d.low, log=True)
        elif d.kind in ("int", "logint"):
            out[d.name] = IntDistribution(int(d.low), int(d.high), log=d.kind == "logint")
        else:
            out[d.name] = FloatDistribution(d.low, d.high, log=d.kind == "log")
    return out


def values_of(space: list[Dimension], params: dict[str, Any]) -> dict[str, float]:
    """The constants' values (by name) of a trial's ``params``."""
    values = {}
    for d in space:
        if d.kind == "pow2":
            values[d.name] = float(2 ** params[f"log2({d.name})"])
        elif d.kind == "beta":
            values[d.name] = 1.0 - params[f"1-{d.name}"]
        else:
            values[d.name] = float(params[d.name])
    return values


def params_of(space: list[Dimension], values: dict[str, float]) -> Optional[dict[str, Any]]:
    """The trial params of constants' ``values`` (the inverse of ``values_of``); None
    when one lies outside its range or is not a power of two where it must be."""
    params: dict[str, Any] = {}
    for d in space:
        value = values[d.name]
        if not d.contains(value):
            return None
        if d.kind == "pow2":
            exponent = math.log2(value)
            if not exponent.is_integer():
                return None
            params[f"log2({d.name})"] = int(exponent)
        elif d.kind == "beta":
            params[f"1-{d.name}"] = 1.0 - value
        elif d.kind in ("int", "logint"):
            params[d.name] = int(value)
        else:
            params[d.name] = value
    return params


def render_trial(label: str, number: int, changed: list[tuple[Dimension, str]]) -> str:
    """The reply for trial ``number`` of sampler ``label``: a description naming every
    changed constant, then one SEARCH/REPLACE block per changed line of train.py."""
    moves = ", ".join(f"{d.name} {d.param.literal} -> {literal}" for d, literal in changed)
    blocks = []
    for d, literal in changed:
        line = d.param.line
        start = line.index("=") + 1
        new_line = line[:start] + line[start:].replace(d.param.literal, literal, 1)
        blocks.append(f"<<<<<<< SEARCH\n{line}\n=======\n{new_line}\n>>>>>>> REPLACE\n")
    return f"Description: {label} #{number}: {moves}\n\ntrain.py\n```python\n" + "".join(blocks) + "```\n"
