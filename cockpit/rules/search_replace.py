"""SEARCH/REPLACE blocks applied to a source: each block's SEARCH text matched exactly,
then ignoring trailing whitespace, then with a uniform indentation shift (aider's
fallbacks); a fallback that matches more than one place is refused, never guessed.
"""

from __future__ import annotations

import ast
from typing import Optional

from cockpit.rules.replies import EDITABLE_FILE, Block, EditError

Edit = Block
"""One SEARCH/REPLACE block (cockpit.rules.replies.Block: ``filename``, ``search``, ``replace``)."""


def join_lines(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def apply_edits(source: str, edits: tuple[Edit, ...] | list[Edit]) -> str:
    """Apply SEARCH/REPLACE ``edits`` in order to ``source`` and return the new text.

    Each SEARCH must match whole lines once: exactly, else ignoring trailing
    whitespace, else with a uniform indentation shift. Raises EditError when a
    search is empty, not found, ambiguous (also for a fallback matching several
    places), overlaps an earlier block, when the result is unchanged or does not
    parse as Python.
    """
    original = source.splitlines()
    lines = original
    for number, edit in enumerate(edits, start=1):
        try:
            lines = _apply_one(lines, edit, number)
        except EditError:
            if number > 1 and _matches_somewhere(original, edit):
                raise EditError(
                    f"Block {number} overlaps an earlier block of your reply: its SEARCH text is in the "
                    "original train.py, but an earlier block already changed those lines. Send one block "
                    "per region of the file."
                ) from None
            raise
    new_source = join_lines(lines)
    check_changed(source, new_source)
    check_python(new_source)
    return new_source


def check_changed(source: str, new_source: str) -> None:
    if new_source == (source if source.endswith("\n") else source + "\n"):
        raise EditError(
            "Your edit does not change train.py (the REPLACE text equals the SEARCH "
            "text). Propose an actual change."
        )


def _matches_somewhere(lines: list[str], edit: Edit) -> bool:
    """Whether ``edit``'s SEARCH is found in ``lines`` (an all-blank SEARCH never is:
    ``_apply_one`` refuses it as empty)."""
    if not edit.search.strip():
        return False
    try:
        _locate(lines, edit.search.splitlines(), 0)
        return True
    except EditError:
        return False


def _apply_one(lines: list[str], edit: Edit, number: int) -> list[str]:
    search = edit.search.splitlines()
    if not any(line.strip() for line in search):
        raise EditError(
            f"Block {number} has an empty SEARCH section. Copy the exact existing "
            "lines of train.py you want to change into SEARCH."
        )
    i, shift = _locate(lines, search, number)
    replace = edit.replace.splitlines()
    if shift is not None:
        replace = [_reindent(line, *shift) for line in replace]
    return lines[:i] + replace + lines[i + len(search):]


def _locate(lines: list[str], search: list[str], number: int) -> tuple[int, Optional[tuple[str, str]]]:
    """Where ``search`` matches in ``lines``: (index, None) for an exact or
    trailing-whitespace match, (index, (search indent, file indent)) for an
    indentation shift. Raises EditError when nothing matches or a stage matches twice."""
    n = len(search)
    windows = range(len(lines) - n + 1)
    exact = [i for i in windows if lines[i:i + n] == search]
    if len(exact) == 1:
        return exact[0], None
    if len(exact) > 1:
        raise _ambiguous(number, exact, "")
    wanted = [line.rstrip() for line in search]
    stripped = [line.rstrip() for line in lines]
    loose = [i for i in windows if stripped[i:i + n] == wanted]
    if len(loose) == 1:
        return loose[0], None
    if len(loose) > 1:
        raise _ambiguous(number, loose, " when trailing whitespace is ignored")
    shifted = [(i, indent) for i in windows for indent in [_shift(stripped[i:i + n], wanted)] if indent is not None]
    if len(shifted) == 1:
        i, indent = shifted[0]
        return i, (_common_indent(wanted), indent)
    if len(shifted) > 1:
        raise _ambiguous(number, [i for i, _ in shifted], " when indentation is shifted")
    first = next(line for line in search if line.strip())
    raise EditError(
        f"The SEARCH text of block {number} was not found in train.py. SEARCH must "
        "copy the current lines exactly (indentation and comments included); "
        f"its first line was: {first.strip()!r}"
    )


def _ambiguous(number: int, hits: list[int], how: str) -> EditError:
    where = ", ".join(str(i + 1) for i in hits)
    return EditError(
        f"The SEARCH text of block {number} occurs {len(hits)} times in train.py{how} "
        f"(lines {where}). Include more surrounding lines so it matches exactly once."
    )


def _common_indent(lines: list[str]) -> str:
    indents = [line[:len(line) - len(line.lstrip())] for line in lines if line.strip()]
    if not indents:
        return ""
    common = indents[0]
    for indent in indents[1:]:
        while not indent.startswith(common):
            common = common[:-1]
    return common


def _shift(window: list[str], wanted: list[str]) -> Optional[str]:
    """The file's indent when ``window`` equals ``wanted`` with one indentation prefix
    swapped for another on every non-blank line (blank lines match blank lines)."""
    own, theirs = _common_indent(wanted), _common_indent(window)
    if own == theirs:
        return None  # no shift: the exact stages already decided
    for have, want in zip(window, wanted):
        if not want.strip():
            if have.strip():
                return None
            continue
        if not have.startswith(theirs) or have[len(theirs):] != want[len(own):]:
            return None
    return theirs


def _reindent(line: str, own: str, theirs: str) -> str:
    if not line.strip():
        return ""
    return theirs + (line[len(own):] if line.startswith(own) else line.lstrip())


def check_python(source: str) -> None:
    """Raise EditError (with the line number and text) when ``source`` is not valid Python."""
    try:
        ast.parse(source, filename=EDITABLE_FILE)
    except SyntaxError as exc:
        line = (exc.text or "").rstrip("\n")
        raise EditError(
            f"After your edit train.py is not valid Python: {exc.msg} at line "
            f"{exc.lineno}: {line.strip()!r}. Fix the edit and send it again."
        ) from None
