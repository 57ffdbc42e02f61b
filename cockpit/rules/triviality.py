"""Is an edit of train.py trivial? Pure functions on two source texts.

A change that leaves the program as Python parses it untouched (comments,
whitespace, docstrings, the spelling of a literal) or that only moves random
seeds would spend a whole run to measure noise. ``trivial_change`` says so in
one line, or returns None for a real change.

It is conservative: a change is called trivial only when the two module ASTs
(without positions) are equal once docstrings are dropped and seed literals
replaced by a placeholder. A seed literal is a plain int or float constant that
is

* the first positional argument of a call whose function name has the word
  ``seed`` (``torch.manual_seed(42)``, ``np.random.seed(0)``,
  ``torch.cuda.manual_seed_all(42)``, ``set_seed(1)``, ``g.manual_seed(7)``),
* the value of a keyword argument whose name has the word ``seed``
  (``make_loader(..., seed=3)``), or
* the value assigned to names that all have the word ``seed``
  (``SEED = 42``, ``RANDOM_SEED: int = 1``, ``args.seed = 3``).

"Has the word" means one of its ``_``/camelCase parts is ``seed``: ``SEED``,
``manual_seed_all`` and ``setSeed`` do, ``reseed`` and ``SEEDLING`` do not.
Renames, reorderings, added or removed seed calls and seeds computed from
other names are real changes.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from typing import Optional

NOTHING = "the edit changes nothing"
COMMENTS = "the edit changes only comments or whitespace"
FORMATTING = "the edit changes only formatting (the code parses to the same program)"
DOCSTRINGS = "the edit changes only docstrings, comments or whitespace"
SEEDS = "the edit changes only random seeds"

_PLACEHOLDER = "<seed>"  # a Name no real code can hold
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z0-9]+(?![a-z])")  # snake_case and camelCase parts
_MAX_LISTED = 3  # seed changes named in the reason


def trivial_change(old_source: str, new_source: str) -> Optional[str]:
    """None when ``new_source`` is a real change of ``old_source``; else a one-line reason:
    it changes nothing, only comments or whitespace, only formatting, only docstrings
    (with or without comments and whitespace), or only random seeds (with comments,
    whitespace or docstrings maybe), e.g. ``the edit changes only random seeds
    (torch.manual_seed 42 -> 137)``. A source that does not parse gives None (the
    syntax check reports it)."""
    if old_source == new_source:
        return NOTHING
    try:
        old_tree, new_tree = ast.parse(old_source), ast.parse(new_source)
    except (SyntaxError, ValueError):  # ValueError: a NUL byte in the source
        return None
    if ast.dump(old_tree) == ast.dump(new_tree):
        return COMMENTS if _code_tokens(old_source) == _code_tokens(new_source) else FORMATTING
    _drop_docstrings(old_tree)
    _drop_docstrings(new_tree)
    if ast.dump(old_tree) == ast.dump(new_tree):
        return DOCSTRINGS
    old_seeds, new_seeds = _SeedMasker().mask(old_tree), _SeedMasker().mask(new_tree)
    if ast.dump(old_tree) != ast.dump(new_tree):
        return None
    changes = [f"{label} {old} -> {new}"
               for (label, old), (_, new) in zip(old_seeds, new_seeds) if old != new]
    if not changes:  # cannot happen: the masked trees differed only at seed literals
        return None
    listed = ", ".join(changes[:_MAX_LISTED])
    if len(changes) > _MAX_LISTED:
        listed += f" and {len(changes) - _MAX_LISTED} more"
    return f"{SEEDS} ({listed})"


def normal_form(source: str) -> str:
    """The program ``source`` stands for, as a string two versions share exactly when
    ``trivial_change`` would call the change between them trivial or nothing: the
    AST dump (no positions) without docstrings and with seed literals masked. A
    source that does not parse stands for itself (its text)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source
    _drop_docstrings(tree)
    _SeedMasker().mask(tree)
    return ast.dump(tree)


def _code_tokens(source: str) -> Optional[list[tuple[int, str]]]:
    """The tokens of ``source`` without comments, line breaks and indentation (None if
    it does not tokenize)."""
    skipped = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
               tokenize.ENCODING, tokenize.ENDMARKER}
    try:
        return [(tok.type, tok.string) for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type not in skipped]
    except (tokenize.TokenError, SyntaxError):
        return None


def _drop_docstrings(tree: ast.AST) -> None:
    """Remove the docstring of the module and of every class and function, in place."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                del body[0]


def _is_seed_name(name: Optional[str]) -> bool:
    return bool(name) and any(part.lower() == "seed" for part in _WORD.findall(name))


def _is_number(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


def _name_of(node: ast.AST) -> Optional[str]:
    """The last name of a call's function or an assignment target (``a.b.c`` -> ``c``)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


class _SeedMasker(ast.NodeTransformer):
    """Replace seed literals by a placeholder Name; ``seeds`` lists (label, literal) in
    the order met, so two trees equal after masking list their seeds pairwise."""

    def __init__(self) -> None:
        self.seeds: list[tuple[str, str]] = []

    def mask(self, tree: ast.AST) -> list[tuple[str, str]]:
        """Mask ``tree`` in place; returns its seeds."""
        self.visit(tree)
        return self.seeds

    def _take(self, label: str, node: ast.Constant) -> ast.Name:
        self.seeds.append((label, repr(node.value)))
        return ast.Name(id=_PLACEHOLDER, ctx=ast.Load())

    def visit_Call(self, node: ast.Call) -> ast.AST:
        label = ast.unparse(node.func)
        if _is_seed_name(_name_of(node.func)) and node.args and _is_number(node.args[0]):
            node.args[0] = self._take(label, node.args[0])
        for keyword in node.keywords:
            if _is_seed_name(keyword.arg) and _is_number(keyword.value):
                keyword.value = self._take(f"{label}({keyword.arg}=...)", keyword.value)
        return self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        if _is_number(node.value) and all(_is_seed_name(_name_of(t)) for t in node.targets):
            node.value = self._take(ast.unparse(node.targets[0]), node.value)
        return self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None and _is_number(node.value) and _is_seed_name(_name_of(node.target)):
            node.value = self._take(ast.unparse(node.target), node.value)
        return self.generic_visit(node)
