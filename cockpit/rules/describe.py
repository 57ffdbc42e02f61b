"""A one-line description of a train.py change, made from the change itself.

Used when a reply has neither a ``Description:`` line nor a line of prose: a
valid edit is never rejected for its description. A change of top-level
constants reads as the offline agent writes its own (``MATRIX_LR 0.04 -> 0.06``);
other changes name the top-level functions and classes they touch and count
lines (``edit train.py: GPT, setup_optimizer (+4 -2 lines)``).
"""

from __future__ import annotations

import ast
import difflib
from typing import Optional

MAX_NAMED = 3
"""At most this many constants or definitions are named; the rest are counted."""


def describe_change(old: str, new: str) -> str:
    """Describe ``old`` -> ``new`` (two versions of train.py, valid Python) in one line."""
    old_nodes, new_nodes = _top_level(old), _top_level(new)
    if old_nodes is None or new_nodes is None:
        return _line_count(old, new)
    constants, others = [], []
    for name in list(old_nodes) + [name for name in new_nodes if name not in old_nodes]:
        before, after = old_nodes.get(name), new_nodes.get(name)
        if before == after:
            continue
        if _is_constant(before) and _is_constant(after):
            constants.append(f"{name} {before[1] if before else '(new)'} -> {after[1] if after else '(removed)'}")
        else:
            others.append(name)
    if constants and not others and _same_apart_from(old, new, old_nodes, new_nodes):
        return _named(constants)
    if not constants and not others:
        return _line_count(old, new)
    return f"edit train.py: {_named(constants + others)} {_line_count(old, new, bare=True)}"


def _top_level(source: str) -> Optional[dict[str, tuple[str, str]]]:
    """name -> (kind, source text of the value or definition) for top-level assignments
    to one name, functions and classes; None when ``source`` does not parse."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    nodes: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            nodes[node.targets[0].id] = ("const" if _literal(node.value) else "code", _text(source, node.value))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            nodes[node.target.id] = ("const" if _literal(node.value) else "code", _text(source, node.value))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            nodes[node.name] = ("def", ast.dump(node))
    return nodes


def _literal(node: ast.AST) -> bool:
    """A constant written with literals and arithmetic only (``0.04``, ``2**19``, ``"SSSL"``, ``-1``)."""
    return all(isinstance(n, (ast.Constant, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop, ast.Tuple,
                              ast.List, ast.Load)) for n in ast.walk(node))


def _text(source: str, node: ast.AST) -> str:
    return " ".join((ast.get_source_segment(source, node) or ast.unparse(node)).split())


def _is_constant(entry: Optional[tuple[str, str]]) -> bool:
    return entry is None or entry[0] == "const"


def _same_apart_from(old: str, new: str, old_nodes: dict, new_nodes: dict) -> bool:
    """True when nothing but top-level constant assignments differs (compared by AST)."""
    def rest(source: str) -> list[str]:
        tree = ast.parse(source)
        return [ast.dump(n) for n in tree.body
                if not (isinstance(n, (ast.Assign, ast.AnnAssign)) and _literal(n.value or ast.Constant(None)))]
    return rest(old) == rest(new)


def _named(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def _line_count(old: str, new: str, bare: bool = False) -> str:
    added = removed = 0
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    counted = f"(+{added} -{removed} lines)"
    return counted if bare else f"edit train.py {counted}"
