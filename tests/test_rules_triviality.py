"""Trivial edits (cockpit.rules.triviality) at their edges: which names are seed names,
which literals are seeds, docstrings of every kind of definition, and the listed reason."""

from __future__ import annotations

import pytest

from cockpit.rules.triviality import COMMENTS, DOCSTRINGS, FORMATTING, NOTHING, SEEDS, trivial_change


def seeds_only(old: str, new: str) -> bool:
    return (trivial_change(old, new) or "").startswith(SEEDS)


@pytest.mark.parametrize("call", ["torch.manual_seed", "np.random.seed", "torch.cuda.manual_seed_all", "set_seed",
                                  "g.manual_seed", "setSeed", "SEED_ALL", "seed"])
def test_calls_whose_name_has_the_word_seed(call):
    assert trivial_change(f"{call}(42)\n", f"{call}(7)\n") == f"{SEEDS} ({call} 42 -> 7)"


@pytest.mark.parametrize("call", ["reseed", "seedling", "SEEDLING", "torch.manual_seeds", "f", "seeds"])
def test_calls_that_only_contain_the_letters(call):
    assert trivial_change(f"{call}(42)\n", f"{call}(7)\n") is None


def test_only_a_number_in_first_place_is_a_seed():
    assert trivial_change("torch.manual_seed(1, 2)\n", "torch.manual_seed(1, 3)\n") is None  # second argument
    assert trivial_change("torch.manual_seed(a)\n", "torch.manual_seed(b)\n") is None  # not a literal
    assert trivial_change("torch.manual_seed('1')\n", "torch.manual_seed('2')\n") is None  # a string
    assert trivial_change("torch.manual_seed(True)\n", "torch.manual_seed(False)\n") is None  # a bool
    assert trivial_change("torch.manual_seed()\n", "torch.manual_seed(1)\n") is None
    assert trivial_change("fns[0](1)\n", "fns[0](2)\n") is None  # no name to read
    assert seeds_only("torch.manual_seed(1.5)\n", "torch.manual_seed(2.5)\n")


def test_seed_keywords():
    assert trivial_change("load(8, seed=3)\n", "load(8, seed=4)\n") == f"{SEEDS} (load(seed=...) 3 -> 4)"
    assert seeds_only("load(data_seed=3)\n", "load(data_seed=4)\n")
    assert trivial_change("load(8, seeds=3)\n", "load(8, seeds=4)\n") is None
    assert trivial_change("load(8, seed=x)\n", "load(8, seed=y)\n") is None
    assert trivial_change("load(**kw, batch=1)\n", "load(**kw, batch=2)\n") is None
    # a seed call's seed keyword too, and both in one call
    assert trivial_change("set_seed(1, seed=2)\n", "set_seed(3, seed=4)\n") == \
        f"{SEEDS} (set_seed 1 -> 3, set_seed(seed=...) 2 -> 4)"


def test_seed_assignments():
    assert trivial_change("SEED = 42\n", "SEED = 7\n") == f"{SEEDS} (SEED 42 -> 7)"
    assert trivial_change("args.seed = 1\n", "args.seed = 2\n") == f"{SEEDS} (args.seed 1 -> 2)"
    assert trivial_change("RANDOM_SEED: int = 1\n", "RANDOM_SEED: int = 2\n") == f"{SEEDS} (RANDOM_SEED 1 -> 2)"
    assert trivial_change("A_SEED = B_SEED = 1\n", "A_SEED = B_SEED = 2\n") == f"{SEEDS} (A_SEED 1 -> 2)"
    assert trivial_change("SEED = LR = 1\n", "SEED = LR = 2\n") is None  # not all the names are seeds
    assert trivial_change("SEED = base + 1\n", "SEED = base + 2\n") is None  # computed
    assert trivial_change("SEED: int = x\n", "SEED: int = y\n") is None
    assert trivial_change("LR: float = 1.0\n", "LR: float = 2.0\n") is None
    assert trivial_change("x[0] = 1\n", "x[0] = 2\n") is None
    assert trivial_change("SEED: int\nx = 1\n", "SEED: int\nx = 2\n") is None


def test_the_reason_lists_three_seeds_and_counts_the_rest():
    old = "A_SEED = 1\nB_SEED = 2\nC_SEED = 3\nD_SEED = 4\nE_SEED = 5\n"
    new = "A_SEED = 9\nB_SEED = 2\nC_SEED = 8\nD_SEED = 7\nE_SEED = 6\n"
    assert trivial_change(old, new) == f"{SEEDS} (A_SEED 1 -> 9, C_SEED 3 -> 8, D_SEED 4 -> 7 and 1 more)"
    three = "A_SEED = 9\nB_SEED = 8\nC_SEED = 7\nD_SEED = 4\nE_SEED = 5\n"
    assert trivial_change(old, three) == f"{SEEDS} (A_SEED 1 -> 9, B_SEED 2 -> 8, C_SEED 3 -> 7)"


def test_seeds_nested_in_code_are_found():
    old = "def main():\n    with ctx():\n        torch.manual_seed(1)\n    return 1\n"
    assert seeds_only(old, old.replace("(1)", "(2)"))
    assert trivial_change(old, old.replace("return 1", "return 2")) is None
    # a seed change together with a real change is a real change
    assert trivial_change("SEED = 1\nLR = 1\n", "SEED = 2\nLR = 2\n") is None


def test_the_kinds_of_no_op():
    assert trivial_change("x = 1\n", "x = 1\n") == NOTHING
    assert trivial_change("x = 1\n", "x = 1  # one\n") == COMMENTS
    assert trivial_change("x = 1\n", "x  =  1\n\n") == COMMENTS
    assert trivial_change("x = (1)\n", "x = 1\n") == FORMATTING
    assert trivial_change("x = 0x10\n", "x = 16\n") == FORMATTING
    assert trivial_change("x = 'a'\n", 'x = "a"\n') == FORMATTING


@pytest.mark.parametrize("definition", ["def f():\n    {doc}\n    return 1\n",
                                        "async def f():\n    {doc}\n    return 1\n",
                                        "class A:\n    {doc}\n    x = 1\n", "{doc}\nx = 1\n"])
def test_docstrings_of_every_definition(definition):
    old, new = definition.format(doc='"""one"""'), definition.format(doc='"""two"""')
    assert trivial_change(old, new) == DOCSTRINGS
    assert trivial_change(old, definition.format(doc="")) == DOCSTRINGS  # removed
    # a string that is not first is code, and so is a number in first place
    assert trivial_change("def f():\n    x = 1\n    'a'\n", "def f():\n    x = 1\n    'b'\n") is None
    assert trivial_change("def f():\n    1\n", "def f():\n    2\n") is None


def test_a_docstring_change_with_a_seed_change_is_a_seed_change():
    old = 'def f():\n    """one"""\n    torch.manual_seed(1)\n'
    assert seeds_only(old, old.replace("one", "two").replace("(1)", "(2)"))


def test_sources_that_do_not_parse_are_for_the_syntax_check():
    assert trivial_change("x = 1\n", "x = (\n") is None
    assert trivial_change("x = (\n", "x = 1\n") is None
    assert trivial_change("x = 1\n", "x = 1\x00\n") is None


def test_formatting_versus_comments_when_tokens_cannot_be_read():
    """An f-string's inner spacing is formatting; a continuation line is only whitespace."""
    assert trivial_change("x = f'{a}'\n", "x = f'{ a }'\n") == FORMATTING
    assert trivial_change("x = 1 + \\\n    2\n", "x = 1 + 2\n") == COMMENTS
