"""The offline agent: one hyper-parameter move at a time, no key, no network.

It reads the top-level UPPER_CASE numeric assignments of train.py
(``MATRIX_LR = 0.04  # comment``, ints, floats, ``2**19``-style powers) and
proposes a single move: floats x2 or x0.5 (betas and momenta: 1 - x halved or
doubled, 0.95 -> 0.975 / 0.9); powers of two >= 16 and batch sizes x2 or /2;
other small ints (< 16, e.g. DEPTH) +1 or -1. Seeds and hardware constants
(names with SEED, FLOPS, PEAK) are left alone. A move already tried
from the same base value is never proposed again: "tried" is read from the
history descriptions (``MATRIX_LR 0.04 -> 0.08``), so it survives restarts; the
reverse of a kept move counts as tried too, and so does a move the human vetoed
(``ProposalContext.vetoed``). The order is a seeded shuffle of
(name, direction) pairs, the same for every call with the same seed.

Its reply goes through the same parse/apply/validate path as an LLM's.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Iterable, Optional

from cockpit.agents.base import AgentExhausted, NoFix, ProposalContext
from cockpit.agents.trials import batch_fits, tokens_per_sequence
from cockpit.rules.constants import POW as _POW, HyperParam, format_float, literal_value, read_hyperparams
from cockpit.row import Row

_MOVE = re.compile(r"^\s*([A-Z][A-Z0-9_]*) (\S+) -> (\S+)")
_BOUNDED = re.compile(r"RATIO|FRAC|DROPOUT")  # floats in (0, 1] stay <= 1
_NEAR_ONE = re.compile(r"BETA|MOMENTUM")  # floats in (0, 1) move by halving/doubling 1 - x
_DIRECTIONS = ("up", "down")


@dataclass(frozen=True)
class Move:
    """Change ``param`` from its literal to ``new_literal`` (numeric ``new_value``)."""

    param: HyperParam
    new_literal: str
    new_value: float

    @property
    def description(self) -> str:
        """The one-line description, e.g. ``MATRIX_LR 0.04 -> 0.08`` (read back as history)."""
        return f"{self.param.name} {self.param.literal} -> {self.new_literal}"


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def candidate_move(param: HyperParam, direction: str) -> Optional[Move]:
    """The move of ``param`` in ``direction`` ("up"/"down"), or None when it is invalid
    (zero or negative value, no change, a bounded ratio above 1, a beta at or below 0)."""
    up = direction == "up"
    if param.value <= 0:
        return None
    if param.kind == "float":
        return _float_move(param, up)
    if param.kind == "pow":
        base, exp = (int(x) for x in _POW.match(param.literal).groups())
        exp += 1 if up else -1
        return Move(param, f"{base}**{exp}", float(base**exp)) if exp >= 1 else None
    n = int(param.value)
    if n >= 16 or (_is_power_of_two(n) and "BATCH" in param.name):
        new_int = n * 2 if up else n // 2
    else:
        new_int = n + 1 if up else n - 1
    if new_int <= 0 or new_int == n:
        return None
    return Move(param, str(new_int), float(new_int))


def _float_move(param: HyperParam, up: bool) -> Optional[Move]:
    if _NEAR_ONE.search(param.name) and param.value < 1.0:
        gap = (1.0 - param.value) * (0.5 if up else 2.0)
        new = 1.0 - gap
        if new <= 0.0:
            return None
    else:
        new = param.value * (2.0 if up else 0.5)
        if _BOUNDED.search(param.name) and param.value <= 1.0 < new:
            return None
    literal = format_float(new, param.literal)
    return Move(param, literal, float(literal))


def constraints_ok(values: dict[str, float], current: Optional[dict[str, float]] = None) -> bool:
    """Whether train.py's own batch assert holds for ``values`` (name -> value), so
    no run is spent on a crash the agent can foresee.

    TOTAL_BATCH_SIZE (tokens) must be a multiple of DEVICE_BATCH_SIZE x MAX_SEQ_LEN.
    With MAX_SEQ_LEN among the values that is checked as it is; without it (it
    lives in prepare.py) the tokens per sequence of ``current``, the train.py that
    ran, must still divide the new ones (cockpit.agents.trials ``batch_fits``),
    so DEVICE_BATCH_SIZE x2 or TOTAL_BATCH_SIZE /2 is not proposed where it would
    leave less than one pass; with neither, DEVICE_BATCH_SIZE must not exceed
    TOTAL_BATCH_SIZE.
    """
    total, device = values.get("TOTAL_BATCH_SIZE"), values.get("DEVICE_BATCH_SIZE")
    if total is None or device is None:
        return True
    seq = values.get("MAX_SEQ_LEN") or values.get("SEQ_LEN")
    if seq:
        return total % (device * seq) == 0
    known_good = tokens_per_sequence(current) if current else None
    if known_good is not None:
        return batch_fits(values, known_good)
    return device <= total


def _key(name: str, old: float, new: float) -> tuple[str, float, float]:
    return (name, float(f"{old:.10g}"), float(f"{new:.10g}"))


def tried_moves(history: Iterable[Row]) -> set[tuple[str, float, float]]:
    """(name, old value, new value) of every move named in ``history`` descriptions;
    for kept moves also the reverse move (going back is not worth a run)."""
    tried: set[tuple[str, float, float]] = set()
    for row in history:
        match = _MOVE.match(row.description)
        old = literal_value(match.group(2)) if match else None
        new = literal_value(match.group(3)) if match else None
        if old is None or new is None:
            continue
        tried.add(_key(match.group(1), old[0], new[0]))
        if row.status == "keep":
            tried.add(_key(match.group(1), new[0], old[0]))
    return tried


def plan_moves(source: str, history, seed: int = 0) -> list[Move]:
    """All valid, untried single moves for ``source``, in the seeded order."""
    params = read_hyperparams(source)
    pairs = [(p.name, d) for p in params for d in _DIRECTIONS]
    random.Random(seed).shuffle(pairs)
    by_name = {p.name: p for p in params}
    values = {p.name: p.value for p in params}
    tried = tried_moves(history)
    moves = []
    for name, direction in pairs:
        move = candidate_move(by_name[name], direction)
        if move is None or _key(name, move.param.value, move.new_value) in tried:
            continue
        if constraints_ok({**values, name: move.new_value}, values):
            moves.append(move)
    return moves


def render_reply(move: Move) -> str:
    """The move as a reply in the SEARCH/REPLACE edit format."""
    old_line = move.param.line
    start = old_line.index("=") + 1
    new_line = old_line[:start] + old_line[start:].replace(move.param.literal, move.new_literal, 1)
    return (
        f"Description: {move.description}\n\n"
        "train.py\n```python\n<<<<<<< SEARCH\n"
        f"{old_line}\n=======\n{new_line}\n>>>>>>> REPLACE\n```\n"
    )


class OfflineAgent:
    """Deterministic hyper-parameter search (see module docstring); ``seed`` fixes the order."""

    name = "offline"
    local = True  # it answers from this process at once: a fleet asks it one slot at a time

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    async def propose(self, context: ProposalContext) -> str:
        """Reply with the first untried move (the ``attempt``-th one on a re-ask).

        Raises AgentExhausted when no untried valid move is left, and NoFix for a
        fix attempt: it cannot read a traceback, so a crashed move is reset.
        """
        if context.fix_attempt:
            raise NoFix("the offline agent does not fix crashes")
        vetoed = tuple(Row("", 0.0, 0.0, "vetoed", text) for text in context.vetoed)
        running = tuple(Row("", 0.0, 0.0, "running", text) for text in context.in_flight)
        moves = plan_moves(context.train_py, context.history + vetoed + running, self.seed)
        if context.attempt >= len(moves):
            raise AgentExhausted(
                "the offline agent has tried every single x2 / x0.5 / +-1 move of the "
                "hyper-parameters from their current values"
            )
        return render_reply(moves[context.attempt])
