"""Turn a model's reply into the next train.py: take every edit that is unambiguous.

The format the prompt asks for (aider's SEARCH/REPLACE)::

    Description: raise the Muon learning rate

    train.py
    ```python
    <<<<<<< SEARCH
    MATRIX_LR = 0.04  # Muon learning rate
    =======
    MATRIX_LR = 0.08  # Muon learning rate
    >>>>>>> REPLACE
    ```

Models drift from it, so three forms are accepted (cockpit.rules.replies reads them,
reasoning in ``<think>`` blocks never counts):

- **SEARCH/REPLACE blocks**, fenced in any language or not at all, with or
  without the file-name line (``train.py``, ``./train.py``, any path ending in
  ``train.py``; another file is refused). SEARCH text is matched exactly first,
  then, as aider's fallbacks do, ignoring trailing whitespace, then allowing a
  uniform indentation shift (the REPLACE lines are shifted the same way). A
  fallback that matches more than one place is ambiguous: refused, never guessed.
- **A unified diff** of train.py, applied by ``git apply --recount`` to a scratch
  copy (hunk line counts that models get wrong are recounted). When git refuses
  a hunk (a bare ``@@``, context it cannot place), each hunk is taken as one
  SEARCH/REPLACE block (context and ``-`` lines / context and ``+`` lines) and
  matched as above.
- **One fenced block holding a whole new train.py**: taken when it parses, differs,
  has at least half the lines of train.py and most of its top-level names, and
  elides nothing (``# ... rest unchanged``).

The description is the ``Description:`` line, else the first line of prose
outside code, else one made from the change (cockpit.rules.describe,
``MATRIX_LR 0.04 -> 0.06``): a valid edit is never refused for its description.
Every failure raises ``EditError`` whose message is written for the model: it is
sent back verbatim as the next turn of a re-ask.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from cockpit.rules.describe import describe_change
from cockpit.rules.replies import (EDITABLE_FILE, FORMAT_REMINDER, MAX_REPLY_CHARS, Block, EditError, Fenced,
                             ReadReply, is_train_py, read_reply)
from cockpit.rules.triviality import SEEDS, trivial_change

__all__ = ["EDITABLE_FILE", "FORMAT_REMINDER", "MAX_REPLY_CHARS", "Edit", "EditError", "Proposal",
           "apply_edits", "apply_reply", "apply_unified_diff", "check_not_trivial", "check_python",
           "parse_reply", "unified_diff"]

Edit = Block
"""One SEARCH/REPLACE block (cockpit.rules.replies.Block: ``filename``, ``search``, ``replace``)."""

FORMS = ("blocks", "diff", "file")
"""The edit forms a reply may take: SEARCH/REPLACE blocks, a unified diff, a whole file."""

_ELISION = re.compile(r"^\s*(#\s*)?(\.\.\.|…)\s*(\(|\[)?\s*(rest|unchanged|same|existing|remaining|other|"
                      r"code|as before|omitted)?", re.IGNORECASE)
_ELIDED_WORDS = re.compile(r"#.*\b(rest of|unchanged|as before|omitted|same as|remains the same)\b", re.IGNORECASE)
_PYTHON_INFO = ("", "python", "py", "python3", "py3")


@dataclass(frozen=True)
class Proposal:
    """A parsed reply: a one-line ``description`` (``described_by`` "label", "prose"
    or "change"), its ``form`` (one of FORMS), the SEARCH/REPLACE ``edits`` of the
    blocks form (or the diff's hunks when git could not place them), the ``diff``
    text of the diff form, the ``file`` text of the whole-file form, and the
    ``reasoning`` the model gave in ``<think>`` blocks (kept, never parsed)."""

    description: str
    edits: tuple[Edit, ...] = ()
    form: str = "blocks"
    described_by: str = "label"
    diff: Optional[str] = None
    file: Optional[str] = None
    reasoning: str = ""


def parse_reply(text: str, max_chars: int = MAX_REPLY_CHARS) -> Proposal:
    """Read ``text`` into a Proposal of SEARCH/REPLACE blocks or a unified diff, without
    train.py (a whole-file reply needs it: ``apply_reply``). The description is the
    label or the prose line ("" when there is neither: ``apply_reply`` then makes one).
    Raises EditError (empty, too long, unclosed block or reasoning, an edit of a file
    other than train.py, no edit found)."""
    read = read_reply(text, max_chars)
    proposal = _structured(read)
    if proposal is None:
        raise EditError(_no_edit_message(read))
    return proposal


def _structured(read: ReadReply) -> Optional[Proposal]:
    description, by = (read.label, "label") if read.label else (read.prose or "", "prose")
    if read.blocks:
        for block in read.blocks:
            _check_filename(block.filename)
        return Proposal(description, read.blocks, "blocks", by, reasoning=read.reasoning)
    if read.diff is not None:
        return Proposal(description, (), "diff", by, diff=_normalise_diff(read.diff), reasoning=read.reasoning)
    return None


def apply_reply(reply: str, source: str, base: Optional[str] = None) -> tuple[Proposal, str]:
    """Parse ``reply`` and apply it to ``source`` (the text of train.py): (proposal, new
    train.py). ``base``: the train.py the reply was written against when that is not
    ``source`` (a proposal asked ahead, re-applied onto a newer best): a whole-file
    reply is then applied as its diff from ``base``. Raises EditError, also for a
    valid edit that changes only seeds, comments, whitespace or docstrings
    (``check_not_trivial``)."""
    read = read_reply(reply)
    proposal = _structured(read)
    if proposal is None:
        whole = whole_file(read.fences, base if base is not None else source)
        if whole is None:
            raise EditError(_no_edit_message(read))
        description, by = (read.label, "label") if read.label else (read.prose or "", "prose")
        proposal = Proposal(description, (), "file", by, file=whole, reasoning=read.reasoning)
    new_source = _apply(proposal, source, base)
    check_not_trivial(source, new_source)
    if not proposal.description:
        proposal = Proposal(describe_change(source, new_source), proposal.edits, proposal.form, "change",
                            proposal.diff, proposal.file, proposal.reasoning)
    return proposal, new_source


def _apply(proposal: Proposal, source: str, base: Optional[str]) -> str:
    if proposal.form == "blocks":
        return apply_edits(source, proposal.edits)
    if proposal.form == "diff":
        return apply_unified_diff(proposal.diff, source)
    if base is not None and base != source:
        return apply_unified_diff(unified_diff(base, proposal.file), source)
    new_source = proposal.file
    _check_changed(source, new_source)
    check_python(new_source)
    return new_source


def _no_edit_message(read: ReadReply) -> str:
    if any(_parses(fence.lines) for fence in read.fences if _is_python(fence)):
        return ("Your reply has a code block but no edit the cockpit can apply: a snippet is not an "
                f"edit. {FORMAT_REMINDER} (A unified diff of train.py or the complete new train.py in "
                "one ```python block also works.)")
    return f"No SEARCH/REPLACE block found in your reply. {FORMAT_REMINDER}"


def _check_filename(name: str) -> None:
    if not is_train_py(name):
        raise EditError(
            f"Your reply edits `{name}`, but only {EDITABLE_FILE} may change. Put the "
            f"line `{EDITABLE_FILE}` alone before each block and edit only that file."
        )


def _join(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------- blocks ----

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
    new_source = _join(lines)
    _check_changed(source, new_source)
    check_python(new_source)
    return new_source


def _check_changed(source: str, new_source: str) -> None:
    if new_source == (source if source.endswith("\n") else source + "\n"):
        raise EditError(
            "Your edit does not change train.py (the REPLACE text equals the SEARCH "
            "text). Propose an actual change."
        )


def _matches_somewhere(lines: list[str], edit: Edit) -> bool:
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


# ------------------------------------------------------------------ diff ----

_HEADER = re.compile(r"^(---|\+\+\+) (\S+)")


def _normalise_diff(diff: str) -> str:
    """``diff`` with its file headers rewritten to ``a/train.py`` / ``b/train.py``
    (``diff --git`` and ``index`` lines dropped). Raises EditError when it names
    another file, creates or deletes a file, or edits several files."""
    out: list[str] = []
    lines = diff.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("diff ", "index ", "new file mode", "deleted file mode", "similarity ")):
            continue
        header = _HEADER.match(line)
        paired = header is not None and (
            (line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "))
            or (line.startswith("+++ ") and i > 0 and lines[i - 1].startswith("--- ")))
        if paired:
            name = header.group(2)
            if name == "/dev/null":
                raise EditError(f"Your diff creates or deletes a file; only edit the existing {EDITABLE_FILE}.")
            stripped = name[2:] if name[:2] in ("a/", "b/") else name
            if not is_train_py(stripped) and not is_train_py(name):
                raise EditError(
                    f"Your diff edits `{stripped}`, but only {EDITABLE_FILE} may change. Send a diff of "
                    f"{EDITABLE_FILE} alone."
                )
            out.append(f"{header.group(1)} {'a' if header.group(1) == '---' else 'b'}/{EDITABLE_FILE}")
            continue
        out.append(line)
    if sum(1 for line in out if line.startswith("--- a/")) > 1:
        out = _merge_file_sections(out)
    return _join(out)


def _merge_file_sections(lines: list[str]) -> list[str]:
    """Several ---/+++ sections for train.py become one (git apply refuses a file twice)."""
    merged, seen = [], False
    for i, line in enumerate(lines):
        if line == f"--- a/{EDITABLE_FILE}" and i + 1 < len(lines) and lines[i + 1] == f"+++ b/{EDITABLE_FILE}":
            if seen:
                continue
            seen = True
        elif line == f"+++ b/{EDITABLE_FILE}" and seen and merged and merged[-1] != f"--- a/{EDITABLE_FILE}":
            continue
        merged.append(line)
    return merged


def apply_unified_diff(diff: str, source: str) -> str:
    """Apply the unified ``diff`` of train.py to ``source`` and return the new text.

    ``git apply --recount`` on a scratch copy (nothing in the workspace is touched
    until the result is valid); when git refuses it, each hunk is applied as a
    SEARCH/REPLACE block (``apply_edits``). Raises EditError with git's reason when
    neither applies, when the result is unchanged or does not parse.
    """
    diff = diff if diff.startswith("--- ") else _normalise_diff(diff)
    applied, reason = _git_apply(diff, source)
    if applied is None:
        edits = _hunks_as_edits(diff)
        if not edits:
            raise EditError(f"Your diff has no hunk (no `@@` line with changes). {FORMAT_REMINDER}")
        try:
            applied = apply_edits(source, edits)
        except EditError as exc:
            raise EditError(f"Your diff does not apply to the current train.py (git apply: {reason}); "
                            f"taken as SEARCH/REPLACE blocks: {exc}") from None
        return applied
    _check_changed(source, applied)
    check_python(applied)
    return applied


def _git_apply(diff: str, source: str) -> tuple[Optional[str], str]:
    """(new text, "") when git applies ``diff`` to ``source``, else (None, git's first error line)."""
    with tempfile.TemporaryDirectory(prefix="cockpit-apply-") as scratch:
        root = Path(scratch)
        (root / EDITABLE_FILE).write_text(source if source.endswith("\n") else source + "\n", encoding="utf-8")
        (root / "reply.patch").write_text(diff, encoding="utf-8")
        env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(root.parent), "GIT_DIR": str(root / ".no-git")}
        for flags in (["--recount"], ["--recount", "--ignore-whitespace"]):
            done = subprocess.run(["git", "apply", *flags, "--whitespace=nowarn", "-p1", "reply.patch"],
                                  cwd=root, env=env, capture_output=True, text=True, timeout=30)
            if done.returncode == 0:
                return (root / EDITABLE_FILE).read_text(encoding="utf-8"), ""
            reason = _first_error(done.stderr)
        return None, reason


def _first_error(stderr: str) -> str:
    lines = [line.removeprefix("error: ").strip() for line in stderr.splitlines() if line.strip()]
    return lines[0] if lines else "it does not apply"


def _hunks_as_edits(diff: str) -> tuple[Edit, ...]:
    """Each hunk as a SEARCH/REPLACE block: (context + ``-`` lines, context + ``+`` lines)."""
    edits: list[Edit] = []
    search: Optional[list[str]] = None
    replace: list[str] = []

    def close() -> None:
        if search is not None and (search != replace):
            edits.append(Edit(EDITABLE_FILE, _join(search), _join(replace)))

    for line in diff.splitlines():
        if line.startswith("@@"):
            close()
            search, replace = [], []
        elif search is None or line.startswith("\\") or line in (f"--- a/{EDITABLE_FILE}", f"+++ b/{EDITABLE_FILE}"):
            continue
        elif line.startswith("-"):
            search.append(line[1:])
        elif line.startswith("+"):
            replace.append(line[1:])
        else:
            text = line[1:] if line.startswith(" ") else line
            search.append(text)
            replace.append(text)
    close()
    return tuple(edits)


# ------------------------------------------------------------ whole file ----

def whole_file(fences: tuple[Fenced, ...], source: str) -> Optional[str]:
    """The one fenced block that is a whole new train.py (see the module docstring),
    else None. Raises EditError when several blocks qualify or one elides code."""
    candidates, elided = [], ""
    for fence in fences:
        if not _is_python(fence) or not _parses(fence.lines):
            continue
        text = _join(list(fence.lines))
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


def _is_python(fence: Fenced) -> bool:
    words = fence.info.lower().replace(":", " ").split()
    return not words or words[0] in _PYTHON_INFO or is_train_py(words[0]) or (
        words[0] in _PYTHON_INFO and len(words) > 1 and is_train_py(words[1]))


def _parses(lines) -> bool:
    try:
        ast.parse(_join(list(lines)))
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


# ---------------------------------------------------------------- checks ----

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


def check_not_trivial(old: str, new: str) -> None:
    """Raise EditError, with the reason and what to do instead, when ``old`` -> ``new``
    would only re-measure noise (``cockpit.rules.triviality.trivial_change``)."""
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
