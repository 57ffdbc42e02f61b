"""Reading a model's reply (cockpit.rules.replies): reasoning, fences, block file names,
diffs, the description and the limits, on the cases tests/test_edits.py and the reply
corpus do not pin."""

from __future__ import annotations

import pytest

from cockpit.rules.replies import (EDITABLE_FILE, FORMAT_REMINDER, MAX_RAW_CHARS, Block,
                                   EditError, Fenced, fenced_blocks, is_train_py, read_reply, split_reasoning)
from cockpit.rules.reply_description import MAX_DESCRIPTION_CHARS

BLOCK = "<<<<<<< SEARCH\na = 1\n=======\na = 2\n>>>>>>> REPLACE\n"


# -------------------------------------------------------------- reasoning --

def test_closed_reasoning_blocks_are_cut_out_in_any_case():
    answer, reasoning, unclosed = split_reasoning("a <think>x</think> b <THINKING mode=1>y</thinking > c")
    assert answer == "a  b  c" and reasoning == "x\n\ny" and unclosed is False


def test_a_close_without_an_open_makes_what_precedes_it_reasoning():
    assert split_reasoning("drafted</think> answer") == (" answer", "drafted", False)
    # the last close counts; a closed block after it is cut out too
    assert split_reasoning("r1</think>mid<think>r2</think>end") == ("midend", "r1\n\nr2", False)
    assert split_reasoning("a</think>b</think>c") == ("c", "a</think>b", False)


def test_an_open_never_closed_makes_the_rest_reasoning():
    assert split_reasoning("answer <think> draft") == ("answer ", "draft", True)
    assert split_reasoning("<think></think>answer") == ("answer", "", False)  # empty parts are dropped


def test_a_reply_that_is_only_reasoning_is_refused():
    with pytest.raises(EditError, match="ended inside a <think> block"):
        read_reply("<think>still thinking")
    with pytest.raises(EditError, match="held only reasoning"):
        read_reply("<think>done</think>   ")
    read = read_reply("<think>draft " + BLOCK + "</think>\n" + BLOCK.replace("a = 2", "a = 3"))
    assert read.blocks == (Block(EDITABLE_FILE, "a = 1\n", "a = 3\n"),)  # the draft is never parsed
    assert read.reasoning.startswith("draft <<<<<<< SEARCH")


# ----------------------------------------------------------------- limits --

def test_empty_and_oversized_replies():
    for empty in ("", " \n\t"):
        with pytest.raises(EditError, match="^Your reply was empty. " + FORMAT_REMINDER.replace("(", r"\(")[:20]):
            read_reply(empty)
    with pytest.raises(EditError, match=f"the limit is {MAX_RAW_CHARS:,}"):
        read_reply("x" * (MAX_RAW_CHARS + 1))
    # reasoning counts toward the raw limit only: a long think block and a short answer pass
    read = read_reply("<think>" + "r" * 150_000 + "</think>\n" + BLOCK)
    assert len(read.blocks) == 1
    with pytest.raises(EditError, match="has 11 characters; the limit is 10"):
        read_reply("a" * 11, max_chars=10)
    assert read_reply("a" * 10, max_chars=10).answer == "a" * 10


def test_line_endings_and_a_byte_order_mark_are_normalised():
    read = read_reply("\ufeffDescription: x\r\n" + BLOCK.replace("\n", "\r\n"))
    assert read.label == "x" and read.blocks == (Block(EDITABLE_FILE, "a = 1\n", "a = 2\n"),)
    read = read_reply("Description: y\r" + BLOCK.replace("\n", "\r"))
    assert read.label == "y" and len(read.blocks) == 1 and "\r" not in read.answer


# ----------------------------------------------------------------- fences --

def test_fences_close_on_as_many_of_the_same_character():
    lines = ["```python", "x", "````", "y", "~~~", "z", "```", "~~~~", "```a```", "````", "q", "```", "w", "````"]
    assert list(fenced_blocks(lines)) == [Fenced("python", ("x",), 0, 2), Fenced("", ("z", "```"), 4, 7),
                                          Fenced("", ("q", "```", "w"), 9, 13)]


def test_an_unclosed_fence_runs_to_the_end():
    assert list(fenced_blocks(["text", "```diff", "a", "b"])) == [Fenced("diff", ("a", "b"), 1, 4)]
    read = read_reply("Description: x\n```python\n" + BLOCK)
    assert len(read.blocks) == 1 and read.fences[0].last == len(read.answer.split("\n"))


def test_a_search_marker_is_not_a_fence():
    assert list(fenced_blocks(["<<<<<<< SEARCH ```", "x"])) == []


# ------------------------------------------------------------ file names --

@pytest.mark.parametrize("before, name", [
    ("train.py", "train.py"), ("`./train.py`", "./train.py"), ("**src/train.py**", "src/train.py"),
    ("### File: model.py", "model.py"), ("File train.py:", "train.py"), ("```python train.py", "train.py"),
    ("```python:src/prepare.py", "src/prepare.py"), ("```python", EDITABLE_FILE),
    ("Then change the rate:", EDITABLE_FILE), ("", EDITABLE_FILE),
])
def test_the_file_a_block_edits(before, name):
    read = read_reply(f"{before}\n\n{BLOCK}")
    assert read.blocks[0].filename == name


def test_a_name_line_before_a_fence_is_found_through_it():
    read = read_reply("prepare.py\n```python\n" + BLOCK + "```\n")
    assert read.blocks[0].filename == "prepare.py"
    assert read.prose is None  # the file name line is not prose


def test_unclosed_blocks_name_the_missing_marker():
    with pytest.raises(EditError, match="A SEARCH block for train.py is not closed: the line `=======` is missing"):
        read_reply("<<<<<<< SEARCH\na\n")
    with pytest.raises(EditError, match="for model.py is not closed: the line `>>>>>>> REPLACE` is missing"):
        read_reply("model.py\n<<<<<<< SEARCH\na\n=======\nb\n")
    # a second SEARCH before the first is closed does not close it
    with pytest.raises(EditError, match="`=======` is missing"):
        read_reply("<<<<<<< SEARCH\na\n<<<<<<< SEARCH\nb\n=======\nc\n>>>>>>> REPLACE\n")


def test_several_blocks_in_order_with_marker_variants():
    text = ("<<<<<<<< SEARCH (block one)\nx = 1\n========\nx = 2\n>>>>>>>> REPLACE\n\n"
            "  <<<<< SEARCH\ny = 1\n  =====  \ny = 2\n  >>>>> REPLACE\n")
    assert read_reply(text).blocks == (Block(EDITABLE_FILE, "x = 1\n", "x = 2\n"),
                                       Block(EDITABLE_FILE, "y = 1\n", "y = 2\n"))
    assert read_reply("<<<<<<< SEARCH\n=======\n>>>>>>> REPLACE\n").blocks == (Block(EDITABLE_FILE, "", ""),)


# ------------------------------------------------------------------ diffs --

DIFF = "--- a/train.py\n+++ b/train.py\n@@ -1,3 +1,3 @@\n x\n-a\n+b\n"


def test_a_bare_diff_and_its_git_header_line():
    read = read_reply("Change it.\n\ndiff --git a/train.py b/train.py\n" + DIFF + "\nThat is all.\n")
    assert read.diff == "diff --git a/train.py b/train.py\n" + DIFF
    assert read.prose == "Change it."
    read = read_reply(DIFF)
    assert read.diff == DIFF and read.prose is None


def test_a_diff_ends_at_the_first_line_that_is_not_one():
    read = read_reply(DIFF + " y\n\\ No newline at end of file\n\n y2\nThat was it.\n\nMore.\n")
    assert read.diff == DIFF + " y\n\\ No newline at end of file\n\n y2\n"
    assert read.prose == "That was it."
    read = read_reply(DIFF + "\nDone.\n")
    assert read.diff == DIFF and read.prose == "Done."
    read = read_reply(DIFF + "```\n")
    assert read.diff == DIFF


def test_a_fenced_diff_of_bare_hunks_gets_train_py_headers():
    for info in ("diff", "patch", "udiff", "DIFF train.py"):
        read = read_reply(f"```{info}\n@@ -1 +1 @@\n-a\n+b\n```\n")
        assert read.diff == "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-a\n+b\n", info
    read = read_reply("```diff\ndiff --git a/x b/x\nindex 1..2\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n```\n")
    assert read.diff == "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
    assert read_reply("```python\n@@ -1 +1 @@\n-a\n+b\n```\n").diff is None
    assert read_reply("```diff\n-a\n+b\n```\n").diff is None  # no hunk


def test_blocks_win_over_a_diff():
    read = read_reply(BLOCK + "\n" + DIFF)
    assert len(read.blocks) == 1 and read.diff is None


# ------------------------------------------------------------ description --

def test_the_label_is_taken_in_its_markdown_forms():
    for line in ("Description: raise lr", "**Description:** raise lr", "## Description: raise lr",
                 "> description : raise lr", "- *Description*: raise lr", "DESCRIPTION:raise lr"):
        assert read_reply(line + "\n" + BLOCK).label == "raise lr", line
    assert read_reply("Description:   \nReal prose here.\n" + BLOCK).label is None
    assert read_reply("Description: **\n" + BLOCK).label is None
    # a label inside a code block does not count
    assert read_reply("```\nDescription: no\n```\n" + BLOCK).label is None


def test_prose_is_the_first_real_line_outside_code():
    text = "Sure!\nOK.\nHere is my change:\n---\ntrain.py\n`code`\n\nDeeper model, same width.\nMore.\n" + BLOCK
    assert read_reply(text).prose == "code"
    text = "Of course!\nHere it is:\n12345\n\n1. **Deeper** model\n" + BLOCK
    assert read_reply(text).prose == "Deeper model"


def test_descriptions_are_cleaned_and_cut_at_a_word():
    assert read_reply("## **Raise** the `lr`\n" + BLOCK).prose == "Raise the `lr`"
    assert read_reply("* `lr up`\n" + BLOCK).prose == "lr up"
    assert read_reply("3) use `a` and `b`\n" + BLOCK).prose == "use `a` and `b`"
    assert read_reply("2**10 tokens per **batch**\n" + BLOCK).prose == "2**10 tokens per batch"  # emphasis only
    long = "word " * 40 + "end"
    cut = read_reply(long + "\n" + BLOCK).prose
    assert cut.endswith(" ...") and len(cut) <= MAX_DESCRIPTION_CHARS + 4 and cut.startswith("word word")
    assert not cut[:-4].endswith(" ")
    assert read_reply("a" * 100 + ", " + "b" * 60 + "\n" + BLOCK).prose == "a" * 100 + " ..."
    exact = "x" * MAX_DESCRIPTION_CHARS
    assert read_reply(exact + "\n" + BLOCK).prose == exact


# ------------------------------------------------------------- file names --

def test_is_train_py():
    for name in ("train.py", " ./train.py ", "`train.py`", "'a/train.py'", '"src\\train.py"', "x/y/train.py"):
        assert is_train_py(name), name
    for name in ("mytrain.py", "train.py.bak", "train.pyc", "prepare.py", "", "train"):
        assert not is_train_py(name), name


# ------------------------------------------------------- diffs, at edges --

def test_a_diff_whose_hunk_header_is_the_last_line():
    text = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@"
    assert read_reply(text).diff == text + "\n"


def test_prose_after_a_hunk_header_is_not_part_of_the_diff():
    read = read_reply("--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\nProse after.\n")
    assert read.diff == "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n" and read.prose == "Prose after."


def test_a_diff_needs_its_three_header_lines_in_a_row():
    assert read_reply("Change:\nlike this\n@@ -1 +1 @@\n-a\n+b\n").diff is None
    assert read_reply("--- a/train.py\nnot a diff\n").diff is None


def test_the_git_line_of_a_diff_at_the_top_and_a_last_line_that_says_diff():
    read = read_reply("diff --git a/train.py b/train.py\n" + DIFF)
    assert read.diff == "diff --git a/train.py b/train.py\n" + DIFF
    read = read_reply(DIFF + "\ndiff it again")
    assert read.diff == DIFF


def test_blank_lines_inside_a_diff_before_any_kind_of_diff_line():
    for nxt in ("+c", "-c", "@@ -5 +5 @@"):
        read = read_reply(DIFF + "\n" + nxt)
        assert read.diff == DIFF + "\n" + nxt + "\n", nxt


def test_a_fenced_diff_of_hunks_drops_git_lines_and_keeps_headers_apart():
    for git_line in ("diff --git a/train.py b/train.py", "index 1234567..89abcde 100644"):
        read = read_reply(f"```diff\n{git_line}\n@@ -1 +1 @@\n-a\n+b\n```\n")
        assert read.diff == "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-a\n+b\n", git_line
    read = read_reply("```diff\n--- a/train.py\n+++ b/train.py\n\n@@ -1 +1 @@\n-a\n+b\n```\n")
    assert read.diff == "--- a/train.py\n+++ b/train.py\n\n@@ -1 +1 @@\n-a\n+b\n"


# ------------------------------------------------ fences and file names --

def test_an_unclosed_fence_hides_its_last_line_from_the_prose():
    assert read_reply("```python\n" + BLOCK + "hello world").prose is None


def test_prose_right_after_a_closed_fence_is_prose():
    assert read_reply("```text\nx\n```\nReal prose here.\n" + BLOCK).prose == "Real prose here."


def test_a_block_at_the_top_does_not_read_its_name_from_the_last_line():
    assert read_reply(BLOCK + "\nnotes.txt").blocks[0].filename == EDITABLE_FILE


def test_a_quoted_name_in_a_fence_info_string():
    for info in ("python `src/model.py`", "python 'src/model.py'", 'python "src/model.py"'):
        assert read_reply(f"```{info}\n{BLOCK}```\n").blocks[0].filename == "src/model.py", info


# ------------------------------------------- what a block hides from prose --

def test_the_lines_of_a_block_and_its_name_line_are_no_description():
    # a REPLACE line that reads like a label or prose is code, not the description
    read = read_reply("<<<<<<< SEARCH\na = 1\n=======\nDescription: not this\n>>>>>>> REPLACE\n")
    assert read.label is None and read.prose is None
    # the line right after the block is prose again
    assert read_reply(BLOCK + "Real prose after the block.\n").prose == "Real prose after the block."
    # a name line in a heading form is the block's, not the prose
    read = read_reply("### File: train.py\n" + BLOCK)
    assert read.blocks[0].filename == EDITABLE_FILE and read.prose is None


def test_letters_of_a_file_name_are_kept():
    assert read_reply("XLNet.py\n" + BLOCK).blocks[0].filename == "XLNet.py"
    assert read_reply("```python XLNet.py\n" + BLOCK + "```\n").blocks[0].filename == "XLNet.py"
    assert read_reply("```python X.py\n" + BLOCK + "```\n").blocks[0].filename == "X.py"
    assert not is_train_py("Xtrain.py")


# --------------------------------------------------- fences back to back --

def test_an_empty_fence_and_a_fence_right_after_another():
    assert list(fenced_blocks(["```", "```", "x"])) == [Fenced("", (), 0, 1)]
    assert list(fenced_blocks(["```", "a", "```", "```python", "b", "```"])) == [
        Fenced("", ("a",), 0, 2), Fenced("python", ("b",), 3, 5)]


def test_a_fence_without_an_info_string_holds_no_diff():
    read = read_reply("Some prose.\n```\nx = 1\n```\n")
    assert read.diff is None and read.fences == (Fenced("", ("x = 1",), 1, 3),)


# ------------------------------------------------------- a diff's last line --

def test_a_blank_line_before_an_indented_fence_ends_the_diff():
    read = read_reply(DIFF + "\n   ```\n   x = 1\n   ```\n")
    assert read.diff == DIFF + "\n" and read.fences == (Fenced("", ("   x = 1",), 7, 9),)


# ------------------------------------------------------ limits, at the edge --

def test_a_reply_of_exactly_the_raw_limit_is_read():
    head, tail = "<think>", "</think>\n" + BLOCK
    read = read_reply(head + "r" * (MAX_RAW_CHARS - len(head) - len(tail)) + tail)
    assert len(read.blocks) == 1
    with pytest.raises(EditError, match=r"the limit is 400,000\. Change only the lines you need, with small "
                                        r"SEARCH blocks\.$"):
        read_reply(head + "r" * (MAX_RAW_CHARS + 1 - len(head) - len(tail)) + tail)


def test_only_a_byte_order_mark_is_stripped_from_the_start():
    assert read_reply("Xavier init for the head.\n" + BLOCK).prose == "Xavier init for the head."
