"""Unified diffs of train.py (cockpit.rules.unified_diffs) on the cases
tests/test_rules_edits.py does not pin: headers at the edges of a diff and a diff git
applies that changes nothing."""

from __future__ import annotations

import pytest

from cockpit.rules.replies import EditError
from cockpit.rules.unified_diffs import apply_unified_diff, normalise_diff

SOURCE = "import math\n\nMATRIX_LR = 0.04\nDEPTH = 8\n"


def test_a_removed_line_that_looks_like_a_header_may_end_the_diff():
    diff = "--- a/train.py\n+++ b/train.py\n@@ -1,2 +1 @@\n x = 1\n--- a rule\n"
    assert normalise_diff(diff) == diff


def test_a_header_naming_another_file_is_refused_at_the_very_end_too():
    diff = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-a\n+b\n--- a/prepare.py\n+++ b/train.py\n"
    with pytest.raises(EditError, match="edits `prepare.py`"):
        normalise_diff(diff)


def test_a_diff_git_applies_without_a_change_is_refused():
    diff = "--- a/train.py\n+++ b/train.py\n@@ -2,3 +2,3 @@\n \n-MATRIX_LR = 0.04\n+MATRIX_LR = 0.04\n DEPTH = 8\n"
    with pytest.raises(EditError, match="does not change train.py"):
        apply_unified_diff(diff, SOURCE)

