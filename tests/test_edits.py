"""SEARCH/REPLACE parsing and application, on literal replies."""

import pytest

from cockpit.rules.edits import EditError, apply_edits, apply_reply, parse_reply, unified_diff

SOURCE = """\
import math

MATRIX_LR = 0.04  # Muon learning rate
WEIGHT_DECAY = 0.2  # cautious weight decay
DEPTH = 8  # layers


def lr(step):
    return MATRIX_LR


def wd(step):
    return MATRIX_LR
"""

GOOD = """Description: raise the Muon learning rate to 0.08

I think a higher learning rate helps at this budget.

train.py
```python
<<<<<<< SEARCH
MATRIX_LR = 0.04  # Muon learning rate
=======
MATRIX_LR = 0.08  # Muon learning rate
>>>>>>> REPLACE
```
"""

TWO_BLOCKS = """Description: deeper and less decay

`train.py`
```
<<<<<<< SEARCH
DEPTH = 8  # layers
=======
DEPTH = 10  # layers
>>>>>>> REPLACE
```

**train.py**
```python
<<<<<<< SEARCH
WEIGHT_DECAY = 0.2  # cautious weight decay   
=======
WEIGHT_DECAY = 0.1  # cautious weight decay
>>>>>>> REPLACE
```
"""


def test_good_reply_parses_and_applies():
    proposal = parse_reply(GOOD)
    assert proposal.description == "raise the Muon learning rate to 0.08"
    assert len(proposal.edits) == 1 and proposal.edits[0].filename == "train.py"
    assert proposal.edits[0].search == "MATRIX_LR = 0.04  # Muon learning rate\n"
    new = apply_edits(SOURCE, proposal.edits)
    assert new == SOURCE.replace("0.04", "0.08")
    assert "+MATRIX_LR = 0.08" in unified_diff(SOURCE, new)


def test_two_blocks_with_decorated_names_and_trailing_spaces():
    proposal, new = apply_reply(TWO_BLOCKS, SOURCE)
    assert proposal.description == "deeper and less decay"
    assert "DEPTH = 10  # layers" in new and "WEIGHT_DECAY = 0.1" in new


def test_replace_can_delete_and_add_lines():
    reply = GOOD.replace("MATRIX_LR = 0.08  # Muon learning rate\n", "")
    new = apply_reply(reply.replace("=======\n", "=======\nMATRIX_LR = 0.05\nEXTRA = 1\n"), SOURCE)[1]
    assert "MATRIX_LR = 0.05\nEXTRA = 1\nWEIGHT_DECAY" in new


@pytest.mark.parametrize("reply, words", [
    ("", "empty"),
    ("   \n\n", "empty"),
    ("Description: x\n\nI would raise the learning rate to 0.08.", "No SEARCH/REPLACE block"),
    (GOOD.replace("train.py\n```", "prepare.py\n```"), "`prepare.py`, but only train.py may change"),
    (GOOD.replace(">>>>>>> REPLACE\n", ""), "`>>>>>>> REPLACE` is missing"),
    (GOOD.replace("=======\n", ""), "`=======` is missing"),
])
def test_parse_errors_are_written_for_the_model(reply, words):
    with pytest.raises(EditError, match=None) as info:
        parse_reply(reply)
    assert words in str(info.value)


def test_block_without_a_file_name_edits_train_py():
    for reply in (GOOD.replace("train.py\n```python\n", ""), GOOD.replace("train.py\n", "")):
        assert "MATRIX_LR = 0.08" in apply_reply(reply, SOURCE)[1]


def test_reply_over_the_size_limit():
    with pytest.raises(EditError, match="limit is 1,000"):
        parse_reply(GOOD + "x" * 1000, max_chars=1000)


def test_search_not_found():
    reply = GOOD.replace("MATRIX_LR = 0.04  # Muon", "MATRIX_LR = 0.05  # Muon", 1)
    with pytest.raises(EditError, match="was not found in train.py.*'MATRIX_LR = 0.05"):
        apply_reply(reply, SOURCE)


def test_search_ambiguous():
    reply = """Description: x
train.py
```
<<<<<<< SEARCH
    return MATRIX_LR
=======
    return MATRIX_LR * 2
>>>>>>> REPLACE
```"""
    with pytest.raises(EditError, match=r"occurs 2 times in train.py \(lines 9, 13\)"):
        apply_reply(reply, SOURCE)


def test_empty_search():
    reply = "Description: x\ntrain.py\n```\n<<<<<<< SEARCH\n=======\nX = 1\n>>>>>>> REPLACE\n```"
    with pytest.raises(EditError, match="empty SEARCH"):
        apply_reply(reply, SOURCE)


def test_no_change():
    reply = GOOD.replace("MATRIX_LR = 0.08", "MATRIX_LR = 0.04")
    with pytest.raises(EditError, match="does not change train.py"):
        apply_reply(reply, SOURCE)


def test_result_must_parse_as_python():
    reply = GOOD.replace("MATRIX_LR = 0.08  # Muon learning rate", "MATRIX_LR = (0.08  # unclosed")
    with pytest.raises(EditError, match="not valid Python.*line 3"):
        apply_reply(reply, SOURCE)
