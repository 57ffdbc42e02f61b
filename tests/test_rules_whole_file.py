"""Whole-file replies (cockpit.rules.whole_file) on the cases tests/test_rules_edits.py
does not pin."""

from __future__ import annotations

import pytest

from cockpit.rules.replies import EditError, Fenced
from cockpit.rules.whole_file import whole_file

SOURCE = "import math\n\nMATRIX_LR = 0.04\nDEPTH = 8\n"


def test_two_whole_files_are_refused_with_what_to_send_instead():
    fences = tuple(Fenced("python", tuple(SOURCE.replace("8", depth).splitlines()), 0, 0) for depth in ("10", "12"))
    with pytest.raises(EditError) as info:
        whole_file(fences, SOURCE)
    assert str(info.value).endswith("; send exactly one (or SEARCH/REPLACE blocks).")
