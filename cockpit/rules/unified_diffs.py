"""A unified diff of train.py applied: ``git apply --recount`` on a scratch copy (hunk
counts models get wrong are recounted); when git refuses a hunk, each hunk is taken
as one SEARCH/REPLACE block (cockpit.rules.search_replace).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from cockpit.rules.replies import EDITABLE_FILE, FORMAT_REMINDER, EditError, is_train_py
from cockpit.rules.search_replace import Edit, apply_edits, check_changed, check_python, join_lines


_HEADER = re.compile(r"^(---|\+\+\+) (\S+)")


def normalise_diff(diff: str) -> str:
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
    return join_lines(out)


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
    diff = diff if diff.startswith("--- ") else normalise_diff(diff)
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
    check_changed(source, applied)
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
            edits.append(Edit(EDITABLE_FILE, join_lines(search), join_lines(replace)))

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
