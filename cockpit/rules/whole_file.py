"""One fenced block holding a whole new train.py: taken when it parses, differs, has at
least half the lines of train.py and most of its top-level names, and elides nothing
(``# ... rest unchanged``).
"""

from __future__ import annotations

import ast
import re
from typing import Optional

from cockpit.rules.replies import EditError, Fenced, is_train_py
from cockpit.rules.search_replace import join_lines


_ELISION = re.compile(r"^\s*(#\s*)?(\.\.\.|…)\s*(\(|\[)?\s*(rest|unchanged|same|existing|remaining|other|"
                      r"code|as before|omitted)?", re.IGNORECASE)
_ELIDED_WORDS = re.compile(r"#.*\b(rest of|unchanged|as before|omitted|same as|remains the same)\b", re.IGNORECASE)
_PYTHON_INFO = ("", "python", "py", "python3", "py3")


def whole_file(fences: tuple[Fenced, ...], source: str) -> Optional[str]:
    """The one fenced block that is a whole new train.py (see the module docstring),
    else None. Raises EditError when several blocks qualify or one elides code."""
    candidates, elided = [], ""
    for fence in fences:
        if not is_python_fence(fence) or not parses(fence.lines):
            continue
        text = join_lines(list(fence.lines))
        if text.strip() == source.strip():
            continue
        gap = _elision(text, source)
        if gap and _names(text) & _names(source):
            elided = elided or gap
        elif _looks_whole(text, source):
            candidates.append(text)
    if len(candidates) > 1:
        raise EditError(f"Your reply holds {len(candidates)} different complete versions of train.py; send "
                        "exactly one (or SEARCH/REPLACE blocks).")
    if not candidates and elided:
        raise EditError(f"Your complete train.py leaves code out ({elided!r}); send the whole file with "
                        "nothing elided, or SEARCH/REPLACE blocks for the lines that change.")
    return candidates[0] if candidates else None


def is_python_fence(fence: Fenced) -> bool:
    words = fence.info.lower().replace(":", " ").split()
    return not words or words[0] in _PYTHON_INFO or is_train_py(words[0]) or (
        words[0] in _PYTHON_INFO and len(words) > 1 and is_train_py(words[1]))


def parses(lines) -> bool:
    try:
        ast.parse(join_lines(list(lines)))
        return True
    except SyntaxError:
        return False


def _names(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _looks_whole(text: str, source: str) -> bool:
    """At least half of train.py's lines and 60% of its top-level names."""
    ours = _names(source)
    if not ours:
        return len(text.splitlines()) >= 0.5 * len(source.splitlines())
    shared = len(ours & _names(text)) / len(ours)
    return shared >= 0.6 and len(text.splitlines()) >= 0.5 * len(source.splitlines())


def _elision(text: str, source: str) -> str:
    """The first line of ``text`` that stands for left-out code and is not in ``source``."""
    present = {line.strip() for line in source.splitlines()}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped in present:
            continue
        if stripped in ("...", "…") or (stripped.startswith("#") and (
                _ELISION.match(stripped) and ("..." in stripped or "…" in stripped)
                or _ELIDED_WORDS.search(stripped))):
            return stripped
    return ""
