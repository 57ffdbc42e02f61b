"""The holdout shard: a second pinned shard the agent never sees, scored for
every run that could be kept, so a night of hill-climbing on one validation
shard can be checked against text it was never selected on.

The workspace's fixed harness (prepare.py's ``evaluate_bpb``) does the
scoring, inside the run, on the model in memory, right after the validation
pass: when ``COCKPIT_HOLDOUT_OUT`` names a file and the run's val_bpb is below
``COCKPIT_BEST_VAL_BPB`` (or no best is given: the baseline and its re-runs),
it scores ``holdout.parquet`` (EVAL_TOKENS // 4 tokens) and writes
``{"holdout_bpb": ..., "tokens": ..., "seconds": ...}`` there. Nothing is
printed: the run's output, which the agent may see after a crash, never holds
it. Discards below the best pay the extra evaluation; clear discards do not.
An upstream checkout's prepare.py does not score it: holdout stays None.

Divergence: since the baseline, val_bpb improved by ``dv`` and holdout_bpb by
``dh``; when ``dv - dh`` exceeds twice the noise of that difference
(``2 sqrt(sigma_val^2 + sigma_holdout^2)`` from the noise floor's re-runs) the
cockpit says the ratchet may be fitting the validation shard.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

OUT_ENV = "COCKPIT_HOLDOUT_OUT"
BEST_ENV = "COCKPIT_BEST_VAL_BPB"


def holdout_env(path: Path, best: Optional[float]) -> dict:
    """The run's environment for the harness: where to write the holdout score,
    and the best val_bpb a run must beat for the harness to score it."""
    env = {OUT_ENV: str(path)}
    if best is not None:
        env[BEST_ENV] = repr(float(best))
    return env


def read_holdout(path: Path) -> Optional[float]:
    """The holdout_bpb the run wrote to ``path`` (then removed), or None: not
    scored, not a finite number, or an unreadable file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    finally:
        path.unlink(missing_ok=True)
    value = data.get("holdout_bpb") if isinstance(data, dict) else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def divergence(base_val: float, base_holdout: float, val: float, holdout: float, sigma_val: float,
               sigma_holdout: float) -> Optional[str]:
    """A warning when val_bpb improved on the baseline by more than holdout_bpb
    did, beyond the noise (module docstring); None otherwise or without noise."""
    dv, dh = base_val - val, base_holdout - holdout
    noise = 2.0 * math.hypot(sigma_val, sigma_holdout)
    if noise <= 0 or dv - dh <= noise:
        return None
    return (f"val_bpb and holdout_bpb move apart: since the baseline val_bpb improved by {dv:.6f} but "
            f"holdout_bpb by {dh:+.6f} (gap {dv - dh:.6f} > noise {noise:.6f}); the ratchet may be fitting "
            "the validation shard")
