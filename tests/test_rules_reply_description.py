"""The description of a reply (cockpit.rules.reply_description): the label, the first line
of prose, and how a long one is cut."""

from __future__ import annotations

from cockpit.rules.reply_description import MAX_DESCRIPTION_CHARS, description_label, first_prose


def test_a_label_of_markup_alone_is_no_label_but_any_text_is():
    assert description_label(["Description: ``", "Description: * _"]) is None
    assert description_label(["Description: X"]) == "X"


def test_a_line_of_capitals_is_prose():
    assert first_prose(["", "USE GELU IN THE MLP"]) == "USE GELU IN THE MLP"
    assert first_prose(["12345", "---"]) is None


def test_a_long_description_is_cut_after_the_last_whole_word():
    # the cut falls right after a space: the word before it is whole and kept
    text = "word " * 40 + "end"
    assert first_prose([text]) == " ".join(["word"] * 30) + " ..."
    # the cut falls inside a word: that word goes, and the punctuation before it
    text = "x " + "a" * 147 + " bbbb"
    assert len(text[:MAX_DESCRIPTION_CHARS]) == MAX_DESCRIPTION_CHARS and text[MAX_DESCRIPTION_CHARS - 1] == " "
    assert first_prose([text]) == "x " + "a" * 147 + " ..."
    assert first_prose(["Raise the lr of " + "m" * 125 + " to MAX, and then more words"]) == (
        "Raise the lr of " + "m" * 125 + " to MAX ...")
