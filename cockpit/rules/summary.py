"""Pure parsers for the output contract of a training run (docs/CONTRACTS.md).

A run prints one progress line per step, separated by carriage returns::

    step 00042 (14.0%) | loss: 3.812345 | lrm: 1.00 | dt: 312ms | tok/sec: 1,680,000 | mfu: 39.8% | epoch: 1 | remaining: 258s

and at the end a ``---`` block of ``key: value`` lines (val_bpb, training_seconds,
..., ``attention``). Before its first step it prints ``attention: <backend>``
(optionally `` (<why>)``); a run that cannot start for an environment reason, or
whose loss diverges, prints ``FAIL: <reason>`` and exits 1. Nothing here does
I/O; the runner feeds text in and gets dicts out.
"""

from __future__ import annotations

import math
import re
from typing import Optional

_STEP_HEAD = re.compile(r"^\s*step\s+(\d+)\s*\(\s*([-+\d.eE]+)\s*%\s*\)\s*(.*)$")
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)", re.IGNORECASE)

# progress-line key -> (StepLogged field name, type)
_STEP_FIELDS = {
    "loss": ("loss", float),
    "lrm": ("lrm", float),
    "dt": ("dt_ms", float),
    "tok/sec": ("tok_per_s", float),
    "mfu": ("mfu", float),
    "epoch": ("epoch", int),
    "remaining": ("remaining_s", float),
}

_ATTENTION_LINE = re.compile(r"^[ \t]*attention:[ \t]*(\S+)", re.MULTILINE)
_FAIL_LINE = re.compile(r"^[ \t]*FAIL:[ \t]*(\S.*?)\s*$", re.MULTILINE)

# Summary keys that are counts (parsed as int); every other numeric value is a float.
_INT_KEYS = frozenset({"num_steps", "depth"})


def _number(text: str) -> Optional[float]:
    """First number in ``text`` (thousands commas allowed, units ignored), or None."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    try:
        return float(match.group(0).replace(",", ""))
    except ValueError:
        return None


def parse_step_line(text: str) -> Optional[dict]:
    """Parse one progress line into a dict of StepLogged fields (experiment excluded).

    Returns ``{"step", "progress_pct", "loss", "lrm", "dt_ms", "tok_per_s", "mfu",
    "epoch", "remaining_s"}`` (``dt_ms`` in milliseconds, ``tok_per_s`` tokens per
    second, ``mfu`` in percent, ``remaining_s`` seconds). Fields missing from the
    line default to 0. Returns None when ``text`` is not a progress line or has no
    loss. Never raises.
    """
    head = _STEP_HEAD.match(text)
    if head is None:
        return None
    try:
        out: dict = {"step": int(head.group(1)), "progress_pct": float(head.group(2))}
    except ValueError:
        return None
    for part in head.group(3).split("|"):
        key, sep, value = part.partition(":")
        field = _STEP_FIELDS.get(key.strip().lower())
        if not sep or field is None:
            continue
        number = _number(value)
        if number is not None:
            name, kind = field
            out[name] = int(number) if kind is int and math.isfinite(number) else number
    if "loss" not in out:
        return None
    for name, kind in _STEP_FIELDS.values():
        out.setdefault(name, kind(0))
    return out


def parse_summary(text: str) -> dict:
    """Parse the last ``---`` block of a run's output into a dict.

    Numeric values become floats (``nan`` included), ``num_steps`` and ``depth``
    become ints; a non-numeric value is kept as a stripped string. Returns ``{}``
    when the text has no ``---`` line (a crashed run). Never raises.
    """
    lines = re.split(r"\r\n|\r|\n", text)
    starts = [i for i, line in enumerate(lines) if line.strip() == "---"]
    if not starts:
        return {}
    summary: dict = {}
    for line in lines[starts[-1] + 1:]:
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not key or " " in key:
            continue
        try:
            number = float(value)
        except ValueError:
            summary[key] = value
            continue
        if key in _INT_KEYS and math.isfinite(number) and number == int(number):
            summary[key] = int(number)
        else:
            summary[key] = number
    return summary


def summary_val_bpb(summary: dict) -> Optional[float]:
    """The summary's val_bpb as a finite float, or None (missing, text, NaN or inf)."""
    value = summary.get("val_bpb")
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def attention_backend(summary: dict, text: str = "") -> str:
    """The attention backend a run used (``fa3:<hub repo>``, ``flex``, ``sdpa``,
    ``sdpa-masked``; an opaque token without spaces): the summary's ``attention``
    value, else the backend of the first ``attention: <backend>`` line of the
    run's output ``text`` (a crashed run printed it before its first step), else
    "" (unknown: an upstream harness prints none). Never raises."""
    value = summary.get("attention")
    if isinstance(value, str) and value.split():
        return value.split()[0]
    match = _ATTENTION_LINE.search(text.replace("\r", "\n"))
    return match.group(1) if match else ""


def fail_reason(text: str) -> str:
    """The reason of the last ``FAIL: <reason>`` line of a run's output ``text``
    (stripped; a line of its own, ``FAIL`` in capitals), "" when it printed none.
    Never raises."""
    reasons = _FAIL_LINE.findall(text.replace("\r", "\n"))
    return reasons[-1] if reasons else ""


def summary_memory_gb(summary: dict) -> float:
    """Peak memory in GB (``peak_vram_mb / 1024``, as upstream), 0.0 when absent."""
    value = summary.get("peak_vram_mb")
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value) / 1024.0
    return 0.0


def split_lines(tail: str, chunk: str) -> tuple[list[str], str]:
    """Split ``tail + chunk`` on ``\\r`` and ``\\n``; return (complete lines, new tail).

    The new tail is the text after the last separator (a partial line still being
    written); pass it back with the next chunk. Empty lines (e.g. between the two
    characters of ``\\r\\n``) are dropped. Use ``flush_tail(tail)`` at end of stream.
    """
    text = tail + chunk
    parts = re.split(r"[\r\n]", text)
    new_tail = parts.pop()
    return [p for p in parts if p], new_tail


def flush_tail(tail: str) -> list[str]:
    """The last (unterminated) line of a stream as a list: ``[tail]`` or ``[]``."""
    return [tail] if tail else []
