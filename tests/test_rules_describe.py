"""One-line descriptions of a train.py change (cockpit.rules.describe). The line is a
results.tsv description when a reply gives none, so its wording is the contract."""

from __future__ import annotations

from cockpit.rules.describe import describe_change

BASE = '''import torch

DEPTH = 8
MATRIX_LR = 0.04
WINDOW: str = "SSSL"
TOTAL = 2**19


def setup_optimizer(model):
    return torch.optim.AdamW(model.parameters())


class GPT:
    pass
'''


def test_a_change_of_constants_reads_like_the_offline_agents():
    assert describe_change(BASE, BASE.replace("MATRIX_LR = 0.04", "MATRIX_LR = 0.06")) == "MATRIX_LR 0.04 -> 0.06"
    both = BASE.replace("DEPTH = 8", "DEPTH = 12").replace("2**19", "2 ** 20")
    assert describe_change(BASE, both) == "DEPTH 8 -> 12, TOTAL 2**19 -> 2 ** 20"
    # annotated, negative, tuple and list constants count as constants too
    assert describe_change(BASE, BASE.replace('"SSSL"', '"LLLL"')) == 'WINDOW "SSSL" -> "LLLL"'
    assert describe_change(BASE, BASE.replace("DEPTH = 8", "DEPTH = -1")) == "DEPTH 8 -> -1"
    assert describe_change(BASE, BASE.replace("DEPTH = 8", "DEPTH = (8,\n         9)")) == "DEPTH 8 -> (8, 9)"
    assert describe_change(BASE, BASE.replace("DEPTH = 8", "DEPTH = [8, 9]")) == "DEPTH 8 -> [8, 9]"


def test_a_new_or_removed_constant_says_so():
    assert describe_change(BASE, BASE + "SEED = 42\n") == "SEED (new) -> 42"
    assert describe_change(BASE, BASE + "SEED: int = 42\n") == "SEED (new) -> 42"
    assert describe_change(BASE, BASE.replace("DEPTH = 8\n", "")) == "DEPTH 8 -> (removed)"


def test_more_than_three_are_counted():
    old = "A = 1\nB = 2\nC = 3\nD = 4\nE = 5\n"
    new = "A = 2\nB = 3\nC = 4\nD = 5\nE = 6\n"
    assert describe_change(old, new) == "A 1 -> 2, B 2 -> 3, C 3 -> 4 and 2 more"
    assert describe_change(old, "A = 2\nB = 3\nC = 4\nD = 4\nE = 5\n") == "A 1 -> 2, B 2 -> 3, C 3 -> 4"
    assert describe_change(old, "A = 2\nB = 3\nC = 4\nD = 5\nE = 5\n") == "A 1 -> 2, B 2 -> 3, C 3 -> 4 and 1 more"


def test_code_changes_name_the_definitions_and_count_lines():
    new = BASE.replace("AdamW(model.parameters())", "SGD(model.parameters(),\n                           lr=0.1)")
    assert describe_change(BASE, new) == "edit train.py: setup_optimizer (+2 -1 lines)"
    new = new.replace("    pass", "    depth = DEPTH")
    assert describe_change(BASE, new) == "edit train.py: setup_optimizer, GPT (+3 -2 lines)"
    mixed = BASE.replace("DEPTH = 8", "DEPTH = 4").replace("    pass", "    depth = 4")
    assert describe_change(BASE, mixed) == "edit train.py: DEPTH 8 -> 4, GPT (+2 -2 lines)"
    # a constant that becomes code is code: named, not read as "A -> B"
    assert describe_change(BASE, BASE.replace("DEPTH = 8", "DEPTH = int('8')")) == \
        "edit train.py: DEPTH (+1 -1 lines)"
    assert describe_change(BASE, BASE + "\nasync def fetch():\n    pass\n") == "edit train.py: fetch (+3 -0 lines)"


def test_a_constant_change_with_other_code_changed_counts_the_lines():
    """Only constant assignments differ -> the short form; an unnamed statement changed too
    (an import, a bare call) -> the long form, so nothing is hidden."""
    new = BASE.replace("DEPTH = 8", "DEPTH = 9").replace("import torch", "import torch\nimport math")
    assert describe_change(BASE, new) == "edit train.py: DEPTH 8 -> 9 (+2 -1 lines)"


def test_changes_naming_nothing_are_line_counts():
    assert describe_change(BASE, BASE + "# a comment\n") == "edit train.py (+1 -0 lines)"
    assert describe_change(BASE, BASE.replace("import torch\n", "")) == "edit train.py (+0 -1 lines)"
    assert describe_change(BASE, BASE.replace("import torch", "import torch as T")) == "edit train.py (+1 -1 lines)"
    # several names on one line and starred targets are not tracked
    assert describe_change(BASE, BASE + "A = B = 1\n") == "edit train.py (+1 -0 lines)"
    assert describe_change(BASE, BASE + "A, B = 1, 2\n") == "edit train.py (+1 -0 lines)"
    assert describe_change(BASE, BASE + "X: int\n") == "edit train.py (+1 -0 lines)"
    assert describe_change(BASE, BASE) == "edit train.py (+0 -0 lines)"


def test_unparseable_code_is_a_line_count():
    assert describe_change(BASE, BASE + "def broken(:\n") == "edit train.py (+1 -0 lines)"
    assert describe_change("def broken(:\n", BASE.replace("DEPTH = 8", "DEPTH = 9")).startswith("edit train.py (+")



def test_code_that_becomes_a_constant_is_still_code():
    """Both sides must be constants for the short form: code -> literal names the definition."""
    old = BASE.replace("DEPTH = 8", "DEPTH = int('8')")
    assert describe_change(old, BASE) == "edit train.py: DEPTH (+1 -1 lines)"
    annotated = BASE.replace('WINDOW: str = "SSSL"', "WINDOW: str = pick()")
    assert describe_change(annotated, annotated.replace("pick()", "choose()")) == \
        "edit train.py: WINDOW (+1 -1 lines)"


def test_an_untracked_assignment_changed_with_a_constant_counts_the_lines():
    old = BASE + "A = B = f()\n"
    new = old.replace("A = B = f()", "A = B = g()").replace("DEPTH = 8", "DEPTH = 9")
    assert describe_change(old, new) == "edit train.py: DEPTH 8 -> 9 (+2 -2 lines)"
