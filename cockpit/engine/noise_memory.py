"""A noise floor remembered, not re-bought.

Measuring the floor costs ``noise_runs`` full runs per session (15 minutes on an
H100 at 3 re-runs of 300 s). The spread of val_bpb over repeated runs depends on
what is run and where: the harness (prepare.py's sha256: data, tokenizer,
``evaluate_bpb``), the baseline train.py (its sha256) and the device (the host
and the attention backend the baseline ran with). A new session whose three
match a measured floor in records.jsonl takes that floor (the newest) instead of
measuring again; its ``noise-floor`` record says where it came from
(``remembered_from``: the session tag, ``measured`` time and the runs), and
``--noise-runs N`` typed on the command line measures again
(cockpit.engine.session ``SessionConfig.reuse_noise``).
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from typing import Iterable, Optional

from cockpit.rules.noise import NoiseFloor

KEY_FIELDS = ("harness_sha256", "train_sha256", "device")


def device_of(backend: str) -> str:
    """The device a floor was measured on: this host's name and the attention backend
    the baseline ran with (``"h100-box · fa3:varunneal"``; the backend names the GPU
    kernel path, so a floor from FA3 is not reused on SDPA)."""
    return f"{platform.node() or 'unknown host'} · {backend or 'unknown backend'}"


def floor_key(harness_sha256: str, train_sha256: str, device: str) -> dict:
    """The facts a floor is reused under, as its record holds them."""
    return {"harness_sha256": harness_sha256, "train_sha256": train_sha256, "device": device}


def remembered(records: Iterable[dict], key: dict) -> Optional[tuple[NoiseFloor, dict]]:
    """The newest ``noise-floor`` record of ``records`` measured (not itself
    remembered) under ``key`` with two runs or more, as (floor, record); None when
    there is none. A key with an empty field matches nothing."""
    if not all(key.get(name) for name in KEY_FIELDS):
        return None
    found = None
    for record in records:
        if (record.get("kind") == "noise-floor" and not record.get("remembered_from")
                and all(record.get(name) == key[name] for name in KEY_FIELDS)):
            runs = [float(v) for v in record.get("runs") or [] if isinstance(v, (int, float))]
            holdouts = [float(v) for v in record.get("holdout_runs") or [] if isinstance(v, (int, float))]
            if len(runs) >= 2:
                found = (NoiseFloor(tuple(runs), tuple(holdouts) if len(holdouts) == len(runs) else ()), record)
    return found


def age(measured: str, now: Optional[datetime] = None) -> str:
    """How long ago ISO-8601 ``measured`` was, in words ("3.2 h", "2.0 days");
    "unknown" when it cannot be read."""
    try:
        then = datetime.fromisoformat(measured)
    except (TypeError, ValueError):
        return "unknown"
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    hours = max(0.0, ((now or datetime.now(timezone.utc)) - then).total_seconds() / 3600)
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"
