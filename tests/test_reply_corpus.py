"""The reply corpus: literal replies in the shapes real models write, on a frozen train.py.

tests/replies/ holds one reply per file (CRLF ones byte-exact, see .gitattributes),
``train.py`` (a frozen copy of substrate/train.py), and ``cases.json``: for each
reply either the changes it must make (pairs of whole lines: old -> new, applied
here independently of the parser) and the description it must get, or the exact
re-ask text the model must be sent (``{FORMAT_REMINDER}`` stands for that text).
"""

import json
from collections import Counter
from pathlib import Path

import pytest

from cockpit.rules.edits import FORMAT_REMINDER, EditError, apply_reply

ROOT = Path(__file__).parent / "replies"
BASE = (ROOT / "train.py").read_text(encoding="utf-8")
CASES = json.loads((ROOT / "cases.json").read_text(encoding="utf-8"))


def expected_source(changes: list[list[str]]) -> str:
    source = BASE
    for old, new in changes:
        assert source.count(old + "\n") == 1, f"the corpus names a line that is not unique: {old!r}"
        source = source.replace(old + "\n", new + "\n")
    return source


def reply_text(name: str) -> str:
    return (ROOT / f"{name}.txt").read_bytes().decode("utf-8")


def test_the_corpus_has_every_shape_and_enough_replies():
    shapes = Counter(case["shape"] for case in CASES)
    assert len(CASES) >= 40
    for shape in ("labeled", "unlabeled", "from-change", "think", "diff", "whole-file", "crlf", "fences",
                  "names", "matching", "bad"):
        assert shapes[shape] >= 2, shape
    assert any(b"\r\n" in (ROOT / f"{c['name']}.txt").read_bytes() for c in CASES if c["shape"] == "crlf")


@pytest.mark.parametrize("case", [c for c in CASES if "changes" in c], ids=lambda c: c["name"])
def test_a_good_reply_makes_exactly_its_train_py(case):
    proposal, new_source = apply_reply(reply_text(case["name"]), BASE)
    assert new_source == expected_source(case["changes"])
    assert proposal.description == case["description"]
    assert "<think>" not in proposal.description and "</think>" not in proposal.description


@pytest.mark.parametrize("case", [c for c in CASES if "reask" in c], ids=lambda c: c["name"])
def test_a_bad_reply_is_reasked_with_its_exact_text(case):
    with pytest.raises(EditError) as info:
        apply_reply(reply_text(case["name"]), BASE)
    assert str(info.value) == case["reask"].replace("{FORMAT_REMINDER}", FORMAT_REMINDER)


def test_reasoning_is_kept_apart_and_its_draft_edit_never_applied():
    from cockpit.rules.edits import parse_reply
    proposal = parse_reply(reply_text("12-think-with-draft-edit"))
    assert "0.08" in proposal.reasoning and "raise LR to 0.08" in proposal.reasoning
    assert proposal.description == "deeper model (10 layers)"
    assert "MATRIX_LR = 0.08" not in apply_reply(reply_text("12-think-with-draft-edit"), BASE)[1]


def test_a_whole_file_asked_ahead_is_rebased_as_its_diff():
    """A whole-file reply written against an older best keeps the newer best's change."""
    newer = BASE.replace("DEPTH = 8 ", "DEPTH = 9 ")
    _, rebased = apply_reply(reply_text("24-whole-file"), newer, base=BASE)
    assert "DEPTH = 9 " in rebased and "MATRIX_LR = 0.03 " in rebased
