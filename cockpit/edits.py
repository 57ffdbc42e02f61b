"""Parse and apply SEARCH/REPLACE edits (aider style) to train.py. Pure functions.

The LLM agent and the offline agent both answer in this format::

    Description: raise the Muon learning rate

    train.py
    ```python
    <<<<<<< SEARCH
    MATRIX_LR = 0.04  # Muon learning rate
    =======
    MATRIX_LR = 0.08  # Muon learning rate
    >>>>>>> REPLACE
    ```

A block whose preceding line is not a file name is taken to edit train.py (the
only editable file). Every failure raises ``EditError`` whose message is written
for the model: it is sent back verbatim as the next turn of a re-ask.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass

from cockpit.triviality import SEEDS, trivial_change

EDITABLE_FILE = "train.py"
MAX_REPLY_CHARS = 100_000  # a reply longer than this is refused (characters)

_DESCRIPTION = re.compile(r"^\s*\**\s*description\s*\**\s*:\s*(.*?)\s*$", re.IGNORECASE)
_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_PATH = re.compile(r"^[\w.\-/\\]+\.\w+$")  # a file name such as train.py or src/model.py

FORMAT_REMINDER = (
    "Answer with one line `Description: <what you changed>` and then one or more "
    "blocks: the line `train.py`, a ``` fence, `<<<<<<< SEARCH`, the exact current "
    "lines, `=======`, the new lines, `>>>>>>> REPLACE`, and the closing fence."
)


class EditError(ValueError):
    """A reply that cannot be turned into a valid train.py; the message is for the model."""


@dataclass(frozen=True)
class Edit:
    """One SEARCH/REPLACE block: replace the lines ``search`` by ``replace`` in ``filename``."""

    filename: str
    search: str
    replace: str


@dataclass(frozen=True)
class Proposal:
    """A parsed reply: a one-line ``description`` and its ``edits`` (at least one)."""

    description: str
    edits: tuple[Edit, ...]


def parse_reply(text: str, max_chars: int = MAX_REPLY_CHARS) -> Proposal:
    """Parse a reply into a Proposal. Raises EditError (empty, too long, no block,
    unclosed block, missing description, or an edit to a file other than train.py)."""
    if not text or not text.strip():
        raise EditError(f"Your reply was empty. {FORMAT_REMINDER}")
    if len(text) > max_chars:
        raise EditError(
            f"Your reply has {len(text):,} characters; the limit is {max_chars:,}. "
            "Change only the lines you need, with small SEARCH blocks."
        )
    lines = text.splitlines()
    edits = tuple(_parse_blocks(lines))
    if not edits:
        raise EditError(f"No SEARCH/REPLACE block found in your reply. {FORMAT_REMINDER}")
    for edit in edits:
        _check_filename(edit.filename)
    return Proposal(description=_parse_description(lines), edits=edits)


def _parse_description(lines: list[str]) -> str:
    for line in lines:
        match = _DESCRIPTION.match(line)
        if match and match.group(1):
            return match.group(1).strip("*` ").strip()
    raise EditError(
        "Your reply has no `Description: ...` line. Start the reply with one line "
        "saying what the change is, e.g. `Description: halve the weight decay`."
    )


def _parse_blocks(lines: list[str]):
    """Yield an Edit per SEARCH/REPLACE block; raise EditError on an unclosed block."""
    i = 0
    while i < len(lines):
        if not _SEARCH.match(lines[i]):
            i += 1
            continue
        filename = _filename_before(lines, i)
        divider = _find(lines, i + 1, _DIVIDER, "=======", filename)
        end = _find(lines, divider + 1, _REPLACE, ">>>>>>> REPLACE", filename)
        yield Edit(filename, _join(lines[i + 1:divider]), _join(lines[divider + 1:end]))
        i = end + 1


def _find(lines: list[str], start: int, pattern: re.Pattern, marker: str, filename: str) -> int:
    for j in range(start, len(lines)):
        if _SEARCH.match(lines[j]):
            break
        if pattern.match(lines[j]):
            return j
    raise EditError(
        f"A SEARCH block for {filename} is not closed: the line `{marker}` is missing. "
        + FORMAT_REMINDER
    )


def _filename_before(lines: list[str], index: int) -> str:
    """The file name on the last non-blank, non-fence line before a SEARCH marker.

    When that line is not a path (prose, a description, another block), the block
    is taken to edit train.py: it is the only editable file, and its SEARCH text
    must match train.py anyway.
    """
    for j in range(index - 1, -1, -1):
        line = lines[j].strip()
        if not line or _FENCE.match(line):
            continue
        name = line.strip("*`#:\"' ")
        return name if _PATH.match(name) else EDITABLE_FILE
    return EDITABLE_FILE


def _check_filename(name: str) -> None:
    cleaned = name.removeprefix("./")
    if cleaned != EDITABLE_FILE:
        raise EditError(
            f"Your reply edits `{name}`, but only {EDITABLE_FILE} may change. Put the "
            f"line `{EDITABLE_FILE}` alone before each block and edit only that file."
        )


def _join(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def apply_edits(source: str, edits: tuple[Edit, ...] | list[Edit]) -> str:
    """Apply ``edits`` in order to ``source`` (the text of train.py) and return the new text.

    A SEARCH block must match whole lines exactly once (trailing whitespace is
    ignored). Raises EditError when a search is empty, not found or ambiguous, when
    the result is unchanged, or when it does not parse as Python.
    """
    lines = source.splitlines()
    for number, edit in enumerate(edits, start=1):
        lines = _apply_one(lines, edit, number)
    new_source = _join(lines)
    if new_source == (source if source.endswith("\n") else source + "\n"):
        raise EditError(
            "Your edit does not change train.py (the REPLACE text equals the SEARCH "
            "text). Propose an actual change."
        )
    check_python(new_source)
    return new_source


def _apply_one(lines: list[str], edit: Edit, number: int) -> list[str]:
    search = edit.search.splitlines()
    if not any(line.strip() for line in search):
        raise EditError(
            f"Block {number} has an empty SEARCH section. Copy the exact existing "
            "lines of train.py you want to change into SEARCH."
        )
    wanted = [line.rstrip() for line in search]
    stripped = [line.rstrip() for line in lines]
    n = len(wanted)
    hits = [i for i in range(len(lines) - n + 1) if stripped[i:i + n] == wanted]
    if not hits:
        raise EditError(
            f"The SEARCH text of block {number} was not found in train.py. SEARCH must "
            "copy the current lines exactly (indentation and comments included); "
            f"its first line was: {search[0].strip()!r}"
        )
    if len(hits) > 1:
        where = ", ".join(str(i + 1) for i in hits)
        raise EditError(
            f"The SEARCH text of block {number} occurs {len(hits)} times in train.py "
            f"(lines {where}). Include more surrounding lines so it matches exactly once."
        )
    i = hits[0]
    return lines[:i] + edit.replace.splitlines() + lines[i + n:]


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


def apply_reply(reply: str, source: str) -> tuple[Proposal, str]:
    """Parse ``reply`` and apply it to ``source``: (proposal, new train.py). Raises EditError,
    also for a valid edit that changes only seeds, comments, whitespace or docstrings
    (``check_not_trivial``)."""
    proposal = parse_reply(reply)
    new_source = apply_edits(source, proposal.edits)
    check_not_trivial(source, new_source)
    return proposal, new_source


def check_not_trivial(old: str, new: str) -> None:
    """Raise EditError, with the reason and what to do instead, when ``old`` -> ``new``
    would only re-measure noise (``cockpit.triviality.trivial_change``)."""
    reason = trivial_change(old, new)
    if reason is None:
        return
    why = ("a seed change measures noise, not an idea" if reason.startswith(SEEDS)
           else "the same program would train again and measure only noise")
    raise EditError(
        f"refused: {reason}; {why}. Propose a change to the model, optimizer, "
        "schedule or data pipeline."
    )


def unified_diff(old: str, new: str, name: str = EDITABLE_FILE) -> str:
    """Unified diff text of ``old`` -> ``new`` (labels a/<name>, b/<name>)."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True),
            fromfile=f"a/{name}", tofile=f"b/{name}",
        )
    )
