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

import difflib
from dataclasses import dataclass
from typing import Optional

from cockpit.rules.describe import describe_change
from cockpit.rules.replies import (EDITABLE_FILE, FORMAT_REMINDER, MAX_REPLY_CHARS, EditError, ReadReply, is_train_py,
                                   read_reply)
from cockpit.rules.search_replace import Edit, apply_edits, check_changed, check_python
from cockpit.rules.triviality import SEEDS, trivial_change
from cockpit.rules.unified_diffs import apply_unified_diff, normalise_diff
from cockpit.rules.whole_file import is_python_fence, parses, whole_file

__all__ = ["EDITABLE_FILE", "FORMAT_REMINDER", "MAX_REPLY_CHARS", "Edit", "EditError", "Proposal",
           "apply_edits", "apply_reply", "apply_unified_diff", "check_not_trivial", "check_python",
           "parse_reply", "unified_diff", "whole_file"]

FORMS = ("blocks", "diff", "file")
"""The edit forms a reply may take: SEARCH/REPLACE blocks, a unified diff, a whole file."""


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
        return Proposal(description, (), "diff", by, diff=normalise_diff(read.diff), reasoning=read.reasoning)
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
    check_changed(source, new_source)
    check_python(new_source)
    return new_source


def _no_edit_message(read: ReadReply) -> str:
    if any(parses(fence.lines) for fence in read.fences if is_python_fence(fence)):
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
