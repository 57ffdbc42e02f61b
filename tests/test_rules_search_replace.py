"""SEARCH/REPLACE blocks applied to train.py (cockpit.rules.search_replace) on the cases
tests/test_rules_edits.py does not pin."""

from __future__ import annotations

import pytest

from cockpit.rules.replies import EditError
from cockpit.rules.edits import apply_reply
from cockpit.rules.search_replace import Edit, apply_edits

SOURCE = "import math\n\nMATRIX_LR = 0.04\nDEPTH = 8\n"


def test_an_empty_search_tells_the_model_what_to_put_there():
    with pytest.raises(EditError) as info:
        apply_edits(SOURCE, (Edit("train.py", "\n  \n", "DEPTH = 9\n"),))
    assert str(info.value) == ("Block 1 has an empty SEARCH section. Copy the exact existing lines of train.py "
                               "you want to change into SEARCH.")


@pytest.mark.parametrize("blank", ["   ", "\n\n", " \n\t\n"])
def test_a_later_block_with_a_blank_search_is_refused_as_empty_not_crashed(blank):
    # a blank SEARCH in block 2 used to reach _locate's next() and raise StopIteration
    # (a RuntimeError in the async proposer) instead of an EditError the model is shown
    reply = ("Description: x\n<<<<<<< SEARCH\nA = 1\n=======\nA = 3\n>>>>>>> REPLACE\n"
             f"<<<<<<< SEARCH\n{blank}\n=======\nC = 3\n>>>>>>> REPLACE\n")
    with pytest.raises(EditError, match="Block 2 has an empty SEARCH section"):
        apply_reply(reply, "A = 1\nB = 2\n")
