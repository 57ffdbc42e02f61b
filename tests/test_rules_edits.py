"""Edits of train.py (cockpit.rules.edits) beyond tests/test_edits.py: unified diffs (headers,
several sections, hunks git cannot place), indentation-shifted SEARCH text, overlapping
blocks, whole-file replies and the checks. A refusal's message is sent to the model as the
next turn, so where it matters the test checks what the message tells it."""

from __future__ import annotations

import pytest

from cockpit.rules.edits import (Edit, EditError, apply_edits, apply_reply, apply_unified_diff, check_not_trivial,
                                 check_python, parse_reply, unified_diff, whole_file)
from cockpit.rules.replies import Fenced

SOURCE = """\
import math

MATRIX_LR = 0.04
DEPTH = 8


def schedule(step):
    if step < 10:
        lr = MATRIX_LR
        return lr * math.sqrt(step)
    return MATRIX_LR


class GPT:
    depth = DEPTH
"""


def diff_of(new: str, old: str = SOURCE) -> str:
    return unified_diff(old, new)


# ------------------------------------------------------------------ diffs --

def test_a_diff_with_git_headers_and_a_path_is_applied_to_train_py():
    new = SOURCE.replace("DEPTH = 8", "DEPTH = 12")
    diff = diff_of(new).replace("a/train.py", "a/src/train.py").replace("b/train.py", "b/src/train.py")
    reply = ("Description: deeper\n\n```diff\ndiff --git a/src/train.py b/src/train.py\nindex 1234567..89abcde 100644\n"
             + diff + "```\n")
    proposal, applied = apply_reply(reply, SOURCE)
    assert proposal.form == "diff" and applied == new
    assert proposal.diff.startswith("--- a/train.py\n+++ b/train.py\n@@")
    assert "diff --git" not in proposal.diff and "index " not in proposal.diff


def test_diff_headers_without_a_prefix_or_a_timestamp():
    new = SOURCE.replace("DEPTH = 8", "DEPTH = 12")
    body = diff_of(new).split("\n", 2)[2]
    for head in ("--- train.py\n+++ train.py\n", "--- train.py\t2026-12-06\n+++ train.py\t2026-12-06\n",
                 "--- ./train.py\n+++ ./train.py\n"):
        assert apply_unified_diff(head + body, SOURCE) == new, head


def test_a_lone_dash_line_inside_a_hunk_is_not_a_header():
    """A removed line that starts with "-- " (or an added one with "++ ") is not a file header
    unless its partner line follows."""
    old = SOURCE + "s = '''\n-- a/b\nkeep\n'''\n"
    new = SOURCE + "s = '''\nkeep\n++ c/d\n'''\n"
    proposal, applied = apply_reply("```diff\n" + diff_of(new, old) + "```\n", old)
    assert applied == new
    assert "\n--- a/b\n" in proposal.diff and "\n+++ c/d\n" in proposal.diff


def test_a_diff_of_another_file_or_a_new_file_is_refused():
    body = diff_of(SOURCE.replace("DEPTH = 8", "DEPTH = 12")).split("\n", 2)[2]

    def reply(head: str) -> str:
        return "Description: x\n\n```diff\n" + head + body + "```\n"

    with pytest.raises(EditError, match="edits `prepare.py`, but only train.py may change"):
        parse_reply(reply("--- a/prepare.py\n+++ b/prepare.py\n"))
    with pytest.raises(EditError, match="creates or deletes a file"):
        parse_reply(reply("--- /dev/null\n+++ b/train.py\n"))
    with pytest.raises(EditError, match="creates or deletes a file"):
        parse_reply(reply("--- a/train.py\n+++ /dev/null\n"))
    with pytest.raises(EditError, match="edits `train.py.bak`"):
        parse_reply(reply("--- a/train.py.bak\n+++ b/train.py.bak\n"))
    with pytest.raises(EditError, match="edits `prepare.py`"):  # no prefix: the name as written
        parse_reply(reply("--- prepare.py\n+++ prepare.py\n"))
    with pytest.raises(EditError, match="edits `prepare.py`"):  # the b/ prefix is git's too
        parse_reply(reply("--- a/train.py\n+++ b/prepare.py\n"))
    with pytest.raises(EditError, match="edits `src/prepare.py`"):  # the a/ prefix is left out of the name
        parse_reply(reply("--- a/src/prepare.py\n+++ b/src/prepare.py\n"))
    # one side may name train.py without the prefix: a/ and b/ are git's, not the path's
    assert parse_reply(reply("--- a/train.py\n+++ train.py\n")).diff.startswith("--- a/train.py\n+++ b/train.py\n")


def test_several_sections_of_train_py_become_one():
    first = diff_of(SOURCE.replace("DEPTH = 8", "DEPTH = 12"))
    second = diff_of(SOURCE.replace("    depth = DEPTH", "    depth = DEPTH + 1"))
    both = SOURCE.replace("DEPTH = 8", "DEPTH = 12").replace("    depth = DEPTH", "    depth = DEPTH + 1")
    proposal = parse_reply("Description: two\n\n```diff\n" + first + second + "```\n")
    assert proposal.diff.startswith("--- a/train.py\n+++ b/train.py\n@@ ")
    assert proposal.diff.count("--- a/train.py") == 1 and proposal.diff.count("+++ b/train.py") == 1
    assert proposal.diff.count("@@ -") == 2
    assert apply_unified_diff(proposal.diff, SOURCE) == both


def test_a_hunk_git_cannot_place_is_taken_as_a_search_replace_block():
    # a bare @@ (no line numbers) and a "\ No newline" marker: git refuses, the hunk applies as a block
    diff = ("--- a/train.py\n+++ b/train.py\n@@\n def schedule(step):\n-    if step < 10:\n+    if step < 20:\n"
            "\\ No newline at end of file\n@@ @@\n class GPT:\n-    depth = DEPTH\n+    depth = DEPTH * 2\n")
    new = SOURCE.replace("step < 10", "step < 20").replace("depth = DEPTH\n", "depth = DEPTH * 2\n")
    assert apply_unified_diff(diff, SOURCE) == new


def test_a_hunk_with_an_unprefixed_blank_context_line():
    """Models drop the space of a blank context line; the fallback keeps the line as context."""
    diff = ("--- a/train.py\n+++ b/train.py\n@@\n DEPTH = 8\n\n\n-def schedule(step):\n+def schedule(step, warm=10):\n")
    assert apply_unified_diff(diff, SOURCE) == SOURCE.replace("def schedule(step):", "def schedule(step, warm=10):")


def test_a_diff_that_does_not_apply_says_why_twice():
    diff = "--- a/train.py\n+++ b/train.py\n@@ -3,1 +3,1 @@\n-MATRIX_LR = 0.05\n+MATRIX_LR = 0.06\n"
    with pytest.raises(EditError) as info:
        apply_unified_diff(diff, SOURCE)
    message = str(info.value)
    assert message.startswith("Your diff does not apply to the current train.py (git apply: ")
    assert "patch failed" in message or "does not apply" in message.split("taken as")[0]
    assert "taken as SEARCH/REPLACE blocks: The SEARCH text of block 1 was not found" in message


def test_a_diff_without_a_change_has_no_hunk():
    with pytest.raises(EditError, match="no hunk"):
        apply_unified_diff("--- a/train.py\n+++ b/train.py\n@@\n DEPTH = 8\n", SOURCE)


def test_a_diff_git_applies_is_still_checked():
    broken = SOURCE.replace("DEPTH = 8", "DEPTH = (8")
    with pytest.raises(EditError, match="not valid Python"):
        apply_unified_diff(diff_of(broken), SOURCE)


# --------------------------------------------------------------- blocks --

def test_search_text_with_another_indentation_is_shifted():
    """SEARCH written at another indentation matches; REPLACE is shifted the same way, its
    blank lines left blank."""
    edit = Edit("train.py", "if step < 10:\n    lr = MATRIX_LR\n", "if step < 5:\n\n    lr = MATRIX_LR / 2\n")
    new = apply_edits(SOURCE, (edit,))
    assert "    if step < 5:\n\n        lr = MATRIX_LR / 2\n        return lr" in new


def test_a_shifted_replace_line_outside_the_indent_keeps_its_text():
    source = "def f():\n    a = 1\n    b = 2\n"
    new = apply_edits(source, (Edit("train.py", "  a = 1\n  b = 2\n", "  a = 3\n b = 4\n"),))
    assert new == "def f():\n    a = 3\n    b = 4\n"


def test_a_shift_needs_every_line_to_match():
    # blank in SEARCH against a non-blank line of the file; a line that differs after the indent
    with pytest.raises(EditError, match="was not found"):
        apply_edits(SOURCE, (Edit("train.py", "if step < 10:\n\n", "if step < 5:\n"),))
    with pytest.raises(EditError, match="was not found"):
        apply_edits(SOURCE, (Edit("train.py", "if step < 10:\n    lr = MATRIX_LR * 2\n", "pass\n"),))


def test_a_shift_with_a_blank_line_matches_a_blank_line():
    source = "def f():\n    a = 1\n\n    b = 2\n    return a + b\n"
    new = apply_edits(source, (Edit("train.py", "a = 1\n\nb = 2\n", "a = 3\n\nb = 4\n"),))
    assert new == "def f():\n    a = 3\n\n    b = 4\n    return a + b\n"


def test_a_shift_that_matches_twice_is_ambiguous():
    source = "def f():\n    x = 1\n\ndef g():\n    x = 1\n"
    with pytest.raises(EditError, match="occurs 2 times in train.py when indentation is shifted"):
        apply_edits(source, (Edit("train.py", "  x = 1\n", "  x = 2\n"),))


def test_the_shift_is_the_longest_indent_all_search_lines_share():
    source = "X = [\n        1,\n     2,\n]\n"  # inside brackets any indentation is valid
    new = apply_edits(source, (Edit("train.py", "      1,\n   2,\n", "      1,\n   3,\n"),))
    assert new == "X = [\n        1,\n     3,\n]\n"


def test_a_block_that_overlaps_an_earlier_one_says_so():
    first = Edit("train.py", "DEPTH = 8\n", "DEPTH = 9\n")
    again = Edit("train.py", "DEPTH = 8\n", "DEPTH = 10\n")
    with pytest.raises(EditError, match="Block 2 overlaps an earlier block"):
        apply_edits(SOURCE, (first, again))
    missing = Edit("train.py", "NOT_THERE = 1\n", "X = 2\n")
    with pytest.raises(EditError, match="SEARCH text of block 2 was not found"):
        apply_edits(SOURCE, (first, missing))
    with pytest.raises(EditError, match="SEARCH text of block 1 was not found"):
        apply_edits(SOURCE, (missing,))


# ------------------------------------------------------------ whole file --

def fence(text: str, info: str = "python") -> Fenced:
    return Fenced(info, tuple(text.splitlines()), 0, 0)


def test_a_whole_file_is_taken_when_it_is_python_and_complete():
    new = SOURCE.replace("DEPTH = 8", "DEPTH = 10")
    for info in ("python", "", "py", "Python3", "train.py", "python:train.py", "python train.py", "./src/train.py"):
        assert whole_file((fence(new, info),), SOURCE) == new, info
    for info in ("bash", "diff", "text train.py", "prepare.py"):
        assert whole_file((fence(new, info),), SOURCE) is None, info


def test_fences_that_are_not_a_whole_new_file():
    assert whole_file((fence(SOURCE),), SOURCE) is None  # unchanged
    assert whole_file((fence(SOURCE + "def (:\n"),), SOURCE) is None  # does not parse
    assert whole_file((fence("DEPTH = 10\n"),), SOURCE) is None  # a snippet
    half = "import math\nMATRIX_LR = 0.05\nDEPTH = 8\ndef schedule(step):\n    return 1\nclass GPT:\n    pass\nX = 1\n"
    assert whole_file((fence(half),), SOURCE) == half  # all the names, half the lines
    few_names = "MATRIX_LR = 0.05\n" + "\n" * 8 + "x = 1\ny = 2\nz = 3\n"
    assert whole_file((fence(few_names),), SOURCE) is None  # 1 of 4 top-level names


def test_later_fences_are_still_looked_at():
    new = SOURCE.replace("DEPTH = 8", "DEPTH = 10")
    assert whole_file((fence("ls -l", "bash"), fence("x = (", "python"), fence(SOURCE), fence(new)), SOURCE) == new


def test_a_source_without_top_level_names_compares_line_counts():
    source = "import os\nprint(1)\nprint(2)\nprint(3)\n"
    assert whole_file((fence("import os\nprint(4)\n"),), source) == "import os\nprint(4)\n"
    assert whole_file((fence("print(4)\n"),), source) is None


def test_two_whole_files_are_refused():
    one, two = SOURCE.replace("DEPTH = 8", "DEPTH = 10"), SOURCE.replace("DEPTH = 8", "DEPTH = 12")
    with pytest.raises(EditError, match="holds 2 different complete versions of train.py"):
        whole_file((fence(one), fence(two)), SOURCE)
    three = SOURCE.replace("DEPTH = 8", "DEPTH = 14")
    with pytest.raises(EditError, match="holds 3 different"):
        whole_file((fence(one), fence(two), fence(three)), SOURCE)


@pytest.mark.parametrize("gap", ["# ... rest unchanged", "...", "# … rest", "# ...", "# rest of the file as before",
                                 "# (omitted)  ...", "    # remaining code unchanged"])
def test_a_whole_file_that_elides_code_is_refused(gap):
    new = SOURCE.replace("class GPT:\n    depth = DEPTH\n", gap + "\n").replace("DEPTH = 8", "DEPTH = 10")
    with pytest.raises(EditError, match="leaves code out"):
        whole_file((fence(new),), SOURCE)


def test_an_elision_marker_already_in_train_py_is_not_one():
    source = SOURCE + "# ... rest unchanged\n"
    new = source.replace("DEPTH = 8", "DEPTH = 10")
    assert whole_file((fence(new),), source) == new
    # a comment without the marker words is code
    new = SOURCE.replace("DEPTH = 8", "DEPTH = 10  # deeper ... maybe")
    assert whole_file((fence(new),), SOURCE) == new


def test_an_elided_snippet_of_other_names_is_no_file_and_no_refusal():
    assert whole_file((fence("def other():\n    ...\n"),), SOURCE) is None


def test_a_whole_file_reply_is_applied_and_described():
    new = SOURCE.replace("DEPTH = 8", "DEPTH = 10")
    proposal, applied = apply_reply("```python\n" + new + "```\n", SOURCE)
    assert proposal.form == "file" and proposal.file == new and applied == new
    assert proposal.description == "DEPTH 8 -> 10" and proposal.described_by == "change"
    proposal, _ = apply_reply("Description: deeper\n```python\n" + new + "```\n", SOURCE)
    assert proposal.description == "deeper" and proposal.described_by == "label"
    proposal, _ = apply_reply("Go deeper now.\n```python\n" + new + "```\n", SOURCE)
    assert proposal.description == "Go deeper now." and proposal.described_by == "prose"


def test_a_whole_file_written_against_an_older_base_is_applied_as_its_diff():
    base = SOURCE
    current = SOURCE.replace("    depth = DEPTH", "    depth = DEPTH + 1")  # the best moved on meanwhile
    reply_file = base.replace("DEPTH = 8", "DEPTH = 10")
    _, applied = apply_reply("```python\n" + reply_file + "```\n", current, base=base)
    assert applied == current.replace("DEPTH = 8", "DEPTH = 10")
    _, same = apply_reply("```python\n" + reply_file + "```\n", current, base=current)
    assert same == reply_file  # base equal to source: taken as the file itself


def test_a_code_block_without_an_edit_is_told_so():
    with pytest.raises(EditError, match="has a code block but no edit"):
        apply_reply("Try this:\n```python\nDEPTH = 10\n```\n", SOURCE)
    with pytest.raises(EditError, match="^No SEARCH/REPLACE block found"):
        apply_reply("Try this:\n```bash\nls\n```\n", SOURCE)


# ---------------------------------------------------------------- checks --

def test_check_python_names_the_line():
    check_python(SOURCE)
    with pytest.raises(EditError) as info:
        check_python("x = 1\ny = (2,\n")
    assert "not valid Python" in str(info.value) and "line 2" in str(info.value) and "'y = (2,'" in str(info.value)


def test_trivial_changes_are_refused_with_the_reason():
    check_not_trivial(SOURCE, SOURCE.replace("DEPTH = 8", "DEPTH = 9"))
    with pytest.raises(EditError, match="^refused: .*comment.*; the same program would train again"):
        check_not_trivial(SOURCE, SOURCE.replace("DEPTH = 8", "DEPTH = 8  # layers"))
    seeded = "import torch\ntorch.manual_seed(1)\n"
    with pytest.raises(EditError, match="a seed change measures noise, not an idea"):
        check_not_trivial(seeded, seeded.replace("(1)", "(2)"))


def test_unified_diff_labels():
    diff = unified_diff("a = 1\n", "a = 2\n", name="x.py")
    assert diff.startswith("--- a/x.py\n+++ b/x.py\n") and "-a = 1\n+a = 2\n" in diff
    assert unified_diff("a\n", "a\n") == ""


# ------------------------------------------------------------- proposals --

def test_a_proposal_says_where_its_description_came_from_and_keeps_the_reasoning():
    block = "train.py\n```\n<<<<<<< SEARCH\nDEPTH = 8\n=======\nDEPTH = 9\n>>>>>>> REPLACE\n```\n"
    diff = "```diff\n" + diff_of(SOURCE.replace("DEPTH = 8", "DEPTH = 9")) + "```\n"
    for body, form in ((block, "blocks"), (diff, "diff")):
        labelled = parse_reply("<think>why not</think>Description: deeper\n\n" + body)
        assert (labelled.description, labelled.described_by, labelled.form) == ("deeper", "label", form)
        assert labelled.reasoning == "why not"
        prose = parse_reply("Go one layer deeper.\n\n" + body)
        assert (prose.description, prose.described_by) == ("Go one layer deeper.", "prose")
        bare, applied = apply_reply("<think>hm</think>" + body, SOURCE)
        assert (bare.description, bare.described_by, bare.form) == ("DEPTH 8 -> 9", "change", form)
        assert bare.reasoning == "hm" and applied == SOURCE.replace("DEPTH = 8", "DEPTH = 9")
        if form == "blocks":
            assert bare.edits == (Edit("train.py", "DEPTH = 8\n", "DEPTH = 9\n"),) and bare.diff is None
        else:
            assert bare.edits == () and bare.diff.startswith("--- a/train.py\n+++ b/train.py\n@@")
    whole = apply_reply("<think>all of it</think>```python\n" + SOURCE.replace("DEPTH = 8", "DEPTH = 9") + "```\n",
                        SOURCE)[0]
    assert whole.reasoning == "all of it" and whole.edits == () and whole.form == "file"


def test_an_unfenced_git_diff_is_kept_without_its_git_line():
    reply = "Deeper.\n\ndiff --git a/train.py b/train.py\n" + diff_of(SOURCE.replace("DEPTH = 8", "DEPTH = 9"))
    proposal = parse_reply(reply)
    assert proposal.diff.startswith("--- a/train.py\n+++ b/train.py\n@@") and "diff --git" not in proposal.diff


def test_a_no_op_edit_of_a_file_without_a_final_newline_is_refused():
    with pytest.raises(EditError, match="does not change train.py"):
        apply_edits("DEPTH = 8", (Edit("train.py", "DEPTH = 8\n", "DEPTH = 8\n"),))
    assert apply_edits("DEPTH = 8", (Edit("train.py", "DEPTH = 8\n", "DEPTH = 9\n"),)) == "DEPTH = 9\n"


def test_search_text_found_twice_once_trailing_spaces_are_ignored_is_ambiguous():
    source = "x = 1  \ny = 2\nx = 1\t\n"
    with pytest.raises(EditError) as info:
        apply_edits(source, (Edit("train.py", "x = 1\n", "x = 3\n"),))
    assert str(info.value) == ("The SEARCH text of block 1 occurs 2 times in train.py when trailing whitespace is "
                               "ignored (lines 1, 3). Include more surrounding lines so it matches exactly once.")


def test_a_diff_passed_with_git_headers_is_checked_like_a_reply():
    body = diff_of(SOURCE.replace("DEPTH = 8", "DEPTH = 12")).split("\n", 2)[2]
    with pytest.raises(EditError, match="edits `prepare.py`"):
        apply_unified_diff("diff --git a/prepare.py b/prepare.py\n--- a/prepare.py\n+++ b/prepare.py\n" + body,
                           SOURCE)


def test_an_unprefixed_context_line_of_a_hunk_is_kept_whole():
    diff = "--- a/train.py\n+++ b/train.py\n@@\nMATRIX_LR = 0.04\n-DEPTH = 8\n+DEPTH = 9\n"
    assert apply_unified_diff(diff, SOURCE) == SOURCE.replace("DEPTH = 8", "DEPTH = 9")


def test_a_shift_stops_at_no_line_after_a_blank_one():
    source = "def f():\n    a = 1\n\n    c = 3\n"
    with pytest.raises(EditError, match="was not found"):
        apply_edits(source, (Edit("train.py", "a = 1\n\nb = 2\n", "a = 1\n\nb = 5\n"),))


def test_a_broken_fence_is_no_whole_file_even_against_a_source_without_names():
    source = "import os\nprint(1)\nprint(2)\nprint(3)\n"
    assert whole_file((fence("import os\nprint(4\n"),), source) is None


def test_annotated_names_count_as_top_level_names():
    source = "A: int = 1\nB: int = 2\nC: int = 3\nprint(A)\n"
    new = "A: int = 5\nB: int = 2\nC: int = 3\nprint(A + 1)\n"
    assert whole_file((fence(new),), source) == new


def test_the_whole_file_thresholds_are_inclusive():
    source = "".join(f"N{i} = {i}\n" for i in range(5)) + "pass\n" * 5  # 5 names, 10 lines
    three_of_five = "N0 = 9\nN1 = 1\nN2 = 2\npass\npass\n"  # 60 % of the names, half the lines
    assert whole_file((fence(three_of_five),), source) == three_of_five
    assert whole_file((fence(three_of_five.replace("pass\n", "", 1)),), source) is None  # 4 lines: under half
    two_of_five = "N0 = 9\nN1 = 1\npass\npass\npass\n"
    assert whole_file((fence(two_of_five),), source) is None
    all_names_few_lines = "N0 = 9; N1 = 1; N2 = 2; N3 = 3; N4 = 4\n"
    assert whole_file((fence(all_names_few_lines),), source) is None


def test_comments_are_elisions_only_with_a_marker():
    for comment in ("# a new note", "# wait ... then go", "# see the docs…"):
        new = SOURCE.replace("DEPTH = 8", "DEPTH = 10\n" + comment)
        assert whole_file((fence(new),), SOURCE) == new, comment


def test_a_diff_applies_to_a_train_py_without_a_final_newline():
    source = SOURCE.rstrip("\n")
    new = SOURCE.replace("DEPTH = 8", "DEPTH = 9")
    assert apply_unified_diff(diff_of(new), source) == new


def test_annotated_names_weigh_like_the_others():
    source = "A: int = 1\nB: int = 2\nC: int = 3\nD = 4\nE = 5\n"
    only_plain = "D = 4\nE = 6\nx = 1\ny = 2\nz = 3\n"  # 2 of 5 names: a snippet, not train.py
    assert whole_file((fence(only_plain),), source) is None
