"""The search space of a sampling agent, read from train.py's constants.

Every top-level UPPER_CASE numeric constant (cockpit.rules.constants) is one
dimension. A ``search:`` mark in its trailing comment gives the range (the rest
of the comment is free text)::

    MATRIX_LR = 0.04      # Muon learning rate; search: log 0.005..0.2
    DEPTH = 4             # search: int 2..8
    ADAM_BETA2 = 0.95     # search: beta 0.8..0.999
    TOTAL_BATCH_SIZE = 2**19  # search: pow2 2**16..2**21
    HEAD_DIM = 128        # search: off

Kinds: ``log`` (a float, log-uniform), ``float`` (uniform), ``int`` (uniform
integers), ``logint`` (integers, log-uniform), ``pow2`` (a power of two, uniform
in its exponent), ``beta`` (a decay in (0, 1): log-uniform in 1 - x, so 0.9,
0.99 and 0.999 are as far apart as they matter), ``off`` (not searched).
Without a mark the range is inferred from the value, as the offline agent's
moves are: a beta or momentum in (0, 1) is ``beta`` with 1 - x from /8 to x8,
but at most 0.5 (or 1 - x itself when that is larger); a ratio or fraction in (0, 1] is ``log`` from x/8 to min(x*8,
1); another float ``log`` from x/8 to x*8; a power of two of 16 or more (or a
batch size that is one, or a ``2**n`` literal) ``pow2`` from /4 to x4; another
int below 16 ``int`` within +-3 (at least 1); a larger int ``logint`` from /8 to
x8. A constant at 0 is left out unless marked (no scale to infer). A malformed
mark or a value outside its marked range raises SpaceError naming the line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional

from cockpit.rules.constants import HyperParam, format_float, read_hyperparams

KINDS = ("log", "float", "int", "logint", "pow2", "beta")
_MARK = re.compile(r"#.*?\bsearch:\s*(?P<spec>[^;#]*)")
_RANGE = re.compile(r"^(?P<kind>[a-z0-9]+)\s+(?P<low>\S+?)\s*\.\.\s*(?P<high>\S+)$")
_NEAR_ONE = re.compile(r"BETA|MOMENTUM")
_BOUNDED = re.compile(r"RATIO|FRAC|DROPOUT")
_POW2 = re.compile(r"^2\s*\*\*\s*(\d+)$")


class SpaceError(ValueError):
    """A ``search:`` mark train.py holds cannot be read, or the value is outside it."""


@dataclass(frozen=True)
class Dimension:
    """One searched constant: ``kind`` (one of KINDS), ``low`` and ``high`` its range
    (the values themselves, 1 - x ranges already turned back for ``beta``; ``pow2``
    bounds are powers of two), ``param`` the constant as train.py holds it, and
    ``marked`` True when a ``search:`` mark gave the range (else inferred)."""

    kind: str
    low: float
    high: float
    param: HyperParam
    marked: bool = False

    @property
    def name(self) -> str:
        """The constant's name."""
        return self.param.name

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the range (bounds included, to 1e-12 relative)."""
        slack = 1e-12 * max(abs(self.low), abs(self.high), 1.0)
        return self.low - slack <= value <= self.high + slack

    def literal(self, value: float) -> str:
        """``value`` as the literal written into train.py: an int for the integer
        kinds (``2**n`` when the old literal was a power), else a float literal
        shaped like the old one, to 4 significant digits."""
        if self.kind in ("int", "logint", "pow2"):
            number = int(round(value))
            if self.param.kind == "pow" and self.kind == "pow2" and number > 0:
                return f"2**{int(round(math.log2(number)))}"
            return str(number)
        return format_float(float(f"{value:.4g}"), self.param.literal)

    def describe(self) -> str:
        """``NAME kind low..high`` and where the range came from, for the start-up print."""
        return f"{self.name} = {self.param.literal}: {self.kind} {_num(self.low)}..{_num(self.high)} " \
               f"({'marked' if self.marked else 'inferred'})"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def _bound(text: str, where: str) -> float:
    power = _POW2.match(text)
    if power:
        return float(2 ** int(power.group(1)))
    try:
        value = float(text)
    except ValueError:
        raise SpaceError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise SpaceError(f"{where}: {text!r} is not a finite number")
    return value


def _marked(param: HyperParam, spec: str, where: str) -> Optional[Dimension]:
    """The dimension a ``search:`` mark ``spec`` gives (None for ``off``)."""
    spec = spec.strip()
    if spec == "off":
        return None
    match = _RANGE.match(spec)
    if match is None or match.group("kind") not in KINDS:
        raise SpaceError(f"{where}: 'search: {spec}' reads neither 'off' nor KIND LOW..HIGH "
                         f"(KIND one of {', '.join(KINDS)})")
    kind = match.group("kind")
    low, high = _bound(match.group("low"), where), _bound(match.group("high"), where)
    if not low < high:
        raise SpaceError(f"{where}: the range {_num(low)}..{_num(high)} is empty (LOW must be below HIGH)")
    if kind in ("log", "logint") and low <= 0:
        raise SpaceError(f"{where}: a {kind} range must be above 0 (got {_num(low)})")
    if kind == "beta" and not (0 < low and high < 1):
        raise SpaceError(f"{where}: a beta range must lie inside (0, 1) (got {_num(low)}..{_num(high)})")
    if kind in ("int", "logint", "pow2") and not (low.is_integer() and high.is_integer()):
        raise SpaceError(f"{where}: {'an' if kind == 'int' else 'a'} {kind} range needs whole bounds "
                         f"(got {_num(low)}..{_num(high)})")
    if kind == "pow2" and not all(b >= 1 and math.log2(b).is_integer() for b in (low, high)):
        raise SpaceError(f"{where}: a pow2 range needs powers of two (got {_num(low)}..{_num(high)})")
    dimension = Dimension(kind, low, high, param, marked=True)
    if not dimension.contains(param.value):
        raise SpaceError(f"{where}: {param.name} = {param.literal} is outside its range {_num(low)}..{_num(high)}")
    return dimension


def _power_of_two(n: float) -> bool:
    return n >= 1 and float(n).is_integer() and math.log2(n).is_integer()


def infer(param: HyperParam) -> Optional[Dimension]:
    """The range of an unmarked constant (module docstring), None when there is none
    to infer (a value of 0 or below)."""
    x = param.value
    if x <= 0:
        return None
    if param.kind == "float":
        if _NEAR_ONE.search(param.name) and x < 1.0:
            gap = 1.0 - x
            return Dimension("beta", 1.0 - min(gap * 8, max(gap, 0.5)), 1.0 - gap / 8, param)
        high = min(x * 8, 1.0) if _BOUNDED.search(param.name) and x <= 1.0 else x * 8
        return Dimension("log", x / 8, high, param)
    if param.kind == "pow" or (_power_of_two(x) and (x >= 16 or "BATCH" in param.name)):
        if _power_of_two(x):
            return Dimension("pow2", max(1.0, x / 4), x * 4, param)
    if x < 16:
        return Dimension("int", max(1.0, x - 3), x + 3, param)
    return Dimension("logint", max(1.0, math.floor(x / 8)), x * 8, param)


def read_space(source: str, path: str = "train.py") -> list[Dimension]:
    """The dimensions of train.py's text ``source``, in file order: marked ranges
    first-class, the rest inferred (``infer``); ``off`` and unscalable constants
    left out. Raises SpaceError (naming ``path:line``) for a malformed mark."""
    numbers = {line: n for n, line in enumerate(source.splitlines(), 1)}
    space = []
    for param in read_hyperparams(source):
        mark = _MARK.search(param.line)
        where = f"{path}:{numbers.get(param.line, 0)}"
        dimension = _marked(param, mark.group("spec"), where) if mark else infer(param)
        if dimension is not None:
            space.append(dimension)
    return space
