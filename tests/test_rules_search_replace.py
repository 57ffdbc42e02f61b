"""SEARCH/REPLACE blocks applied to train.py (cockpit.rules.search_replace) on the cases
tests/test_rules_edits.py does not pin."""

from __future__ import annotations

import pytest

from cockpit.rules.replies import EditError
from cockpit.rules.search_replace import Edit, apply_edits

SOURCE = "import math\n\nMATRIX_LR = 0.04\nDEPTH = 8\n"


def test_an_empty_search_tells_the_model_what_to_put_there():
    with pytest.raises(EditError) as info:
        apply_edits(SOURCE, (Edit("train.py", "\n  \n", "DEPTH = 9\n"),))
    assert str(info.value) == ("Block 1 has an empty SEARCH section. Copy the exact existing lines of train.py "
                               "you want to change into SEARCH.")
