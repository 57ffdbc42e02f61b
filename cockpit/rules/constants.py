"""The numeric constants of train.py: its top-level UPPER_CASE assignments.

``MATRIX_LR = 0.04  # comment``, ints, floats, ``2**19``-style powers; read by
both searching agents (cockpit.agents.offline moves one at a time,
cockpit.agents.sampler samples many at once over cockpit.rules.search_space).
Seeds and hardware constants (names with SEED, FLOPS, PEAK) are not
hyper-parameters and are left out, and so is a name assigned more than once
(its SEARCH line would be ambiguous).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_ASSIGN = re.compile(
    r"^(?P<name>[A-Z][A-Z0-9_]*)\s*(?::\s*\w+\s*)?=\s*(?P<value>[0-9][0-9_.eE+\-*\s]*?)\s*(?:#.*)?$"
)
_FLOAT = re.compile(r"^(?:\d[\d_]*\.\d*|\.\d+|\d[\d_]*)(?:[eE][-+]?\d+)?$")
_INT = re.compile(r"^\d[\d_]*$")
POW = re.compile(r"^(\d+)\s*\*\*\s*(\d+)$")
SKIPPED = re.compile(r"SEED|FLOPS|PEAK")  # constants, not hyper-parameters


@dataclass(frozen=True)
class HyperParam:
    """A top-level numeric assignment: ``kind`` is "float", "int" or "pow"."""

    name: str
    line: str
    literal: str
    value: float
    kind: str


def literal_value(literal: str) -> Optional[tuple[float, str]]:
    """(value, kind) of a numeric literal (``0.04``, ``8``, ``2**19``), or None."""
    text = literal.strip()
    power = POW.match(text)
    if power:
        return float(int(power.group(1)) ** int(power.group(2))), "pow"
    if _INT.match(text):
        return float(int(text.replace("_", ""))), "int"
    if _FLOAT.match(text):
        return float(text.replace("_", "")), "float"
    return None


def read_hyperparams(source: str) -> list[HyperParam]:
    """The numeric UPPER_CASE top-level assignments of ``source``, in file order.

    Names assigned more than once are left out (their SEARCH line would be ambiguous).
    """
    found: list[HyperParam] = []
    for line in source.splitlines():
        match = _ASSIGN.match(line)
        parsed = literal_value(match.group("value")) if match else None
        if parsed is not None:
            value, kind = parsed
            found.append(HyperParam(match.group("name"), line, match.group("value").strip(), value, kind))
    counts: dict[str, int] = {}
    for param in found:
        counts[param.name] = counts.get(param.name, 0) + 1
    return [p for p in found if counts[p.name] == 1 and not SKIPPED.search(p.name)]


def format_float(value: float, like: str) -> str:
    """A float literal for ``value``: e-notation when ``like`` (the old literal) used it."""
    value = float(f"{value:.10g}")
    text = f"{value:g}" if "e" in like.lower() else repr(value)
    return text if ("." in text or "e" in text) else text + ".0"
