"""Read a model's reply the way a person would: reasoning, prose, code, and the edit it holds.

Real models drift from any format. This module only *reads*: it splits off
reasoning (``<think>``/``<thinking>`` blocks, and litellm's ``reasoning_content``
which cockpit.agents.llm wraps in ``<think>``), normalises line endings (CRLF,
CR), finds fenced code blocks, SEARCH/REPLACE blocks and unified diffs, and the
description candidates (a ``Description:`` label, else the first line of prose
outside code). Deciding what the edit does to train.py is cockpit.rules.edits'.

Nothing inside a reasoning block is ever parsed for edits or shown as the
proposal: reasoning models often draft edits there and then change their mind.
``EditError`` messages are written for the model: they go back verbatim as the
next turn of a re-ask.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from cockpit.rules.reply_description import FILE_NAME, description_label, first_prose

EDITABLE_FILE = "train.py"
MAX_REPLY_CHARS = 100_000
"""An answer (reasoning removed) longer than this is refused (characters)."""
MAX_RAW_CHARS = 400_000
"""A whole reply, reasoning included, longer than this is refused (characters)."""
FORMAT_REMINDER = (
    "Answer with one line `Description: <what you changed>` and then one or more "
    "blocks: the line `train.py`, a ``` fence, `<<<<<<< SEARCH`, the exact current "
    "lines, `=======`, the new lines, `>>>>>>> REPLACE`, and the closing fence."
)
_THINK_BLOCK = re.compile(r"<(think|thinking)\b[^>]*>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)
_THINK_OPEN = re.compile(r"<(think|thinking)\b[^>]*>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</(think|thinking)\s*>", re.IGNORECASE)
_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\b.*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9}\s*REPLACE\b.*$")
_FENCE_OPEN = re.compile(r"^\s*(`{3,}|~{3,})\s*(.*?)\s*$")
_DIFF_OLD = re.compile(r"^--- (\S.*)$")
_DIFF_NEW = re.compile(r"^\+\+\+ (\S.*)$")
_HUNK = re.compile(r"^@@.*$")
"""A description taken from prose is cut at a word boundary to this many characters."""


class EditError(ValueError):
    """A reply that cannot be turned into a valid train.py; the message is for the model."""


@dataclass(frozen=True)
class Block:
    """One SEARCH/REPLACE block: replace the lines ``search`` by ``replace`` in ``filename``
    (texts end with a newline; ``filename`` as written, train.py when none was)."""

    filename: str
    search: str
    replace: str


@dataclass(frozen=True)
class Fenced:
    """A fenced code block: its info string (``python``, ``diff``, ``python train.py``, ""),
    content lines, and the indices ``first``..``last`` (inclusive) of the fence lines
    in the answer (``last`` = len(lines) when the fence was never closed)."""

    info: str
    lines: tuple[str, ...]
    first: int
    last: int


@dataclass(frozen=True)
class ReadReply:
    """A reply as read: the ``answer`` text (reasoning removed, LF line endings),
    the ``reasoning`` text, the SEARCH/REPLACE ``blocks``, the unified ``diff`` text
    (None when there is none), the ``fences``, the ``label`` of a ``Description:``
    line and the first line of ``prose`` outside code (None when absent)."""

    answer: str
    reasoning: str
    blocks: tuple[Block, ...]
    diff: Optional[str]
    fences: tuple[Fenced, ...]
    label: Optional[str]
    prose: Optional[str]


def read_reply(text: str, max_chars: int = MAX_REPLY_CHARS) -> ReadReply:
    """Read ``text`` (a model's reply). Raises EditError when it is empty, too long
    (answer over ``max_chars`` or the whole over MAX_RAW_CHARS characters), ends inside
    a reasoning block, or holds a SEARCH block that is not closed."""
    if not text or not text.strip():
        raise EditError(f"Your reply was empty. {FORMAT_REMINDER}")
    if len(text) > MAX_RAW_CHARS:
        raise EditError(f"Your reply has {len(text):,} characters; the limit is {MAX_RAW_CHARS:,}. "
                        "Change only the lines you need, with small SEARCH blocks.")
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    answer, reasoning, unclosed = split_reasoning(text)
    if unclosed and not answer.strip():
        raise EditError("Your reply ended inside a <think> block: no answer came after the reasoning. "
                        f"Close it with </think>, then give the edit. {FORMAT_REMINDER}")
    if not answer.strip():
        raise EditError(f"Your reply held only reasoning (a <think> block) and no answer. {FORMAT_REMINDER}")
    if len(answer) > max_chars:
        raise EditError(
            f"Your reply has {len(answer):,} characters; the limit is {max_chars:,}. "
            "Change only the lines you need, with small SEARCH blocks."
        )
    lines = answer.split("\n")
    fences = tuple(fenced_blocks(lines))
    code = _fenced_mask(lines, fences)
    blocks, block_lines = _blocks(lines)
    diff, diff_lines = (None, set()) if blocks else _diff(lines, fences)
    outside = [line for i, line in enumerate(lines) if i not in code and i not in block_lines and i not in diff_lines]
    return ReadReply(answer, reasoning, tuple(blocks), diff, fences, description_label(outside), first_prose(outside))


def split_reasoning(text: str) -> tuple[str, str, bool]:
    """(answer, reasoning, unclosed) of ``text``: closed ``<think>``/``<thinking>`` blocks
    are cut out; text before a closing tag without its opening tag (the chat template
    opened it) is reasoning; an opening tag never closed makes the rest reasoning."""
    parts: list[str] = []

    def cut(match: re.Match) -> str:
        parts.append(match.group(2).strip())
        return ""

    answer = _THINK_BLOCK.sub(cut, text)
    closes = list(_THINK_CLOSE.finditer(answer))
    if closes:
        parts.insert(0, answer[:closes[-1].start()].strip())
        answer = answer[closes[-1].end():]
    unclosed = False
    opened = _THINK_OPEN.search(answer)
    if opened:
        parts.append(answer[opened.end():].strip())
        answer, unclosed = answer[:opened.start()], True
    return answer, "\n\n".join(part for part in parts if part), unclosed


def fenced_blocks(lines: list[str]):
    """Yield a Fenced per ``` or ~~~ fence in ``lines`` (a fence closes on a line of
    at least as many of the same character; one never closed runs to the end)."""
    i = 0
    while i < len(lines):
        opened = _FENCE_OPEN.match(lines[i])
        if not opened or _SEARCH.match(lines[i]):
            i += 1
            continue
        mark, info = opened.group(1), opened.group(2)
        if mark[0] == "`" and "`" in info:  # inline code such as ```x``` on one line
            i += 1
            continue
        j = i + 1
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped and set(stripped) == {mark[0]} and len(stripped) >= len(mark):
                break
            j += 1
        yield Fenced(info, tuple(lines[i + 1:j]), i, j)
        i = j + 1


def _fenced_mask(lines: list[str], fences: tuple[Fenced, ...]) -> set[int]:
    return {i for fence in fences for i in range(fence.first, min(fence.last, len(lines) - 1) + 1)}


def _blocks(lines: list[str]) -> tuple[list[Block], set[int]]:
    """The SEARCH/REPLACE blocks and the line indices they (and their file-name lines) span."""
    blocks: list[Block] = []
    used: set[int] = set()
    i = 0
    while i < len(lines):
        if not _SEARCH.match(lines[i]):
            i += 1
            continue
        filename, name_at = _filename_before(lines, i)
        divider = _find(lines, i + 1, _DIVIDER, "=======", filename)
        end = _find(lines, divider + 1, _REPLACE, ">>>>>>> REPLACE", filename)
        blocks.append(Block(filename, _join(lines[i + 1:divider]), _join(lines[divider + 1:end])))
        used.update(range(i, end + 1))
        if name_at is not None:
            used.add(name_at)
        i = end + 1
    return blocks, used


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


def _filename_before(lines: list[str], index: int) -> tuple[str, Optional[int]]:
    """The file a SEARCH block edits and the index of the line that named it.

    Read from the last non-blank line before the marker, looking through fence
    lines (a fence's info string may hold the name: ```python train.py). When that
    line is not a path (prose, a description, another block), the block edits
    train.py: it is the only editable file, and its SEARCH text must match it anyway.
    """
    for j in range(index - 1, -1, -1):
        line = lines[j].strip()
        if not line:
            continue
        fence = _FENCE_OPEN.match(line)
        if fence:
            for word in reversed(re.split(r"[\s:]+", fence.group(2))):
                if FILE_NAME.match(word.strip("`'\"")):
                    return word.strip("`'\""), j
            continue
        name = line.strip("*`#:\"' ").removeprefix("File").strip(" :`")
        if FILE_NAME.match(name):
            return name, j
        return EDITABLE_FILE, None
    return EDITABLE_FILE, None


def _diff(lines: list[str], fences: tuple[Fenced, ...]) -> tuple[Optional[str], set[int]]:
    """The unified diff in the answer (its header lines and hunks, LF endings) and
    the line indices it spans; a ```diff fence of bare hunks gets train.py headers."""
    for i in range(len(lines) - 2):
        if _DIFF_OLD.match(lines[i]) and _DIFF_NEW.match(lines[i + 1]) and _HUNK.match(lines[i + 2]):
            start = i - 1 if i > 0 and lines[i - 1].startswith("diff ") else i
            end = _diff_end(lines, i + 2)
            return _join(lines[start:end]), set(range(start, end))
    for fence in fences:
        if fence.info.lower().split(" ")[0] in ("diff", "patch", "udiff") and any(
                _HUNK.match(line) for line in fence.lines):
            body = [line for line in fence.lines if not line.startswith(("diff ", "index "))]
            if not (body and _DIFF_OLD.match(body[0])):
                body = [f"--- a/{EDITABLE_FILE}", f"+++ b/{EDITABLE_FILE}"] + body
            return _join(body), set(range(fence.first, fence.last + 1))
    return None, set()


def _diff_end(lines: list[str], start: int) -> int:
    """Index after the last line of the diff whose first hunk starts at ``start``."""
    end = start
    for j in range(start, len(lines)):
        line = lines[j]
        if line.startswith((" ", "+", "-", "@@", "\\")) and not _FENCE_OPEN.match(line):
            end = j + 1
        elif line == "" and j + 1 < len(lines) and lines[j + 1].startswith((" ", "+", "-", "@@")):
            end = j + 1  # a blank context line whose leading space the model dropped
        else:
            break
    return end


def _join(lines) -> str:
    return "".join(line + "\n" for line in lines)


def is_train_py(name: str) -> bool:
    """True when ``name`` (as a model wrote it) names train.py: ``train.py``,
    ``./train.py``, ``a/train.py`` or any path ending in ``/train.py``."""
    cleaned = name.strip().strip("`'\"").replace("\\", "/")
    return cleaned == EDITABLE_FILE or cleaned.endswith("/" + EDITABLE_FILE)
