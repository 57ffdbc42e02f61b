"""Repositories in upstream layout (karpathy/autoresearch and its forks).

Detected by layout: a git checkout with ``prepare.py`` and ``train.py`` at its
root and no ``cockpit.toml``. cockpit then runs ``uv run train.py`` (or
``--run-command``), never runs prepare.py (the data is prepared as upstream
says, once, by hand) and never imports it: upstream's prepare.py imports its
own dependencies, which cockpit's environment need not have. The training
budget, needed for the hard limit, is read from prepare.py's source with
``ast``.
"""

from __future__ import annotations

import ast
import math
import operator
from pathlib import Path
from typing import Optional

DEFAULT_RUN_COMMAND = ("uv", "run", "train.py")
DEFAULT_BUDGET_S = 300.0  # upstream's TIME_BUDGET, seconds
PREPARE_HINT = ("upstream layout: cockpit runs no prepare step; prepare the data once as upstream "
                "says (`uv run prepare.py`) before the session")

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow}


def is_upstream_layout(root: Path) -> bool:
    """True for a git checkout with prepare.py and train.py and no cockpit.toml."""
    return (not (root / "cockpit.toml").exists()
            and all((root / name).exists() for name in ("prepare.py", "train.py", ".git")))


def _number(node: ast.AST) -> Optional[float]:
    """The value of a numeric literal or of + - * / // ** on literals, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _number(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _number(node.left), _number(node.right)
        if left is None or right is None:
            return None
        try:
            return float(_OPS[type(node.op)](left, right))
        except (ArithmeticError, OverflowError):
            return None
    return None


def _assigned_value(statement: ast.stmt, name: str) -> Optional[ast.AST]:
    if isinstance(statement, ast.Assign):
        if any(isinstance(t, ast.Name) and t.id == name for t in statement.targets):
            return statement.value
    elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        if statement.target.id == name:
            return statement.value
    return None


def read_time_budget(prepare_py: Path, default: float = DEFAULT_BUDGET_S) -> tuple[float, str]:
    """(seconds, note): the last top-level ``TIME_BUDGET = <number>`` of
    ``prepare_py``, read with ``ast`` and never imported; ``default`` when the
    file cannot be parsed or holds no positive, finite numeric TIME_BUDGET
    (``1e400`` reads as inf and would lift the hard limit). ``note`` is a
    one-line message for the session saying which."""
    try:
        tree = ast.parse(prepare_py.read_text(encoding="utf-8"), filename=str(prepare_py))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as exc:
        return default, f"cannot parse {prepare_py.name} ({exc}); TIME_BUDGET {default:g}s assumed"
    found: Optional[float] = None
    for statement in tree.body:
        value = _assigned_value(statement, "TIME_BUDGET")
        if value is not None:
            found = _number(value)
    if found is None or not math.isfinite(found) or found <= 0:
        return default, f"no positive, finite TIME_BUDGET in {prepare_py.name}; {default:g}s assumed"
    return found, f"TIME_BUDGET {found:g}s read from {prepare_py.name} (not imported)"
