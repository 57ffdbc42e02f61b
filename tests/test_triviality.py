"""The seed and no-op guard: trivial edits are refused with a reason, real ones pass."""

import pytest

from cockpit.rules.edits import EditError, apply_reply
from cockpit.rules.triviality import COMMENTS, DOCSTRINGS, FORMATTING, NOTHING, SEEDS, trivial_change

SOURCE = '''"""A train.py-like file."""
import random

import numpy as np
import torch

SEED = 42  # random seed
MATRIX_LR = 0.04  # Muon learning rate
WINDOW_PATTERN = "SSSL"  # attention windows


def make_loader(batch, seed=0):
    """Batches of a seeded loader."""
    return batch, seed


def main():
    torch.manual_seed(42)
    np.random.seed(SEED)
    random.seed(SEED)
    loader = make_loader(8, seed=3)
    return MATRIX_LR * 2, loader
'''


def edit(*pairs: tuple[str, str]) -> str:
    """SOURCE with each ``old`` replaced (once, and it must be there) by ``new``."""
    new = SOURCE
    for old, replacement in pairs:
        assert new.count(old) == 1, old
        new = new.replace(old, replacement)
    return new


def reply_for(*pairs: tuple[str, str]) -> str:
    """A SEARCH/REPLACE reply making the same edit (each SEARCH widened to whole lines)."""
    blocks = ""
    for old, new in pairs:
        start = SOURCE.rfind("\n", 0, SOURCE.index(old)) + 1
        end = SOURCE.index("\n", SOURCE.index(old) + len(old))
        lines = SOURCE[start:end]
        blocks += f"<<<<<<< SEARCH\n{lines}\n=======\n{lines.replace(old, new)}\n>>>>>>> REPLACE\n"
    return f"Description: a change\n\ntrain.py\n```python\n{blocks}```\n"


@pytest.mark.parametrize("pairs, which", [
    ([("    torch.manual_seed(42)", "    torch.manual_seed(137)")], "torch.manual_seed 42 -> 137"),
    ([("SEED = 42  # random seed", "SEED = 7  # random seed")], "SEED 42 -> 7"),
    ([("make_loader(8, seed=3)", "make_loader(8, seed=4)")], "make_loader(seed=...) 3 -> 4"),
    ([("    torch.manual_seed(42)", "    torch.manual_seed(0)  # another draw")], "torch.manual_seed 42 -> 0"),
])
def test_seed_only_changes_are_refused(pairs, which):
    assert trivial_change(SOURCE, edit(*pairs)) == f"{SEEDS} ({which})"
    with pytest.raises(EditError) as info:
        apply_reply(reply_for(*pairs), SOURCE)
    message = str(info.value)
    assert message.startswith(f"refused: {SEEDS} ({which}); a seed change measures noise, not an idea.")
    assert "Propose a change to the model, optimizer, schedule or data pipeline." in message


def test_other_seed_spellings():
    cases = [
        ("np.random.seed(1)", "np.random.seed(2)", "np.random.seed 1 -> 2"),
        ("torch.cuda.manual_seed_all(1)", "torch.cuda.manual_seed_all(2)", "torch.cuda.manual_seed_all 1 -> 2"),
        ("set_seed(1)", "set_seed(2)", "set_seed 1 -> 2"),
        ("g.manual_seed(1)", "g.manual_seed(2)", "g.manual_seed 1 -> 2"),
        ("setSeed(1)", "setSeed(2)", "setSeed 1 -> 2"),
        ("RANDOM_SEED: int = 1", "RANDOM_SEED: int = 2", "RANDOM_SEED 1 -> 2"),
        ("args.seed = 1", "args.seed = 2", "args.seed 1 -> 2"),
    ]
    for old, new, which in cases:
        assert trivial_change(f"x = 1\n{old}\n", f"x = 1\n{new}\n") == f"{SEEDS} ({which})"


def test_many_seeds_and_comments_together_give_the_seed_reason():
    old = "SEED = 1\ntorch.manual_seed(1)\nrandom.seed(1)\nnp.random.seed(1)\nx = 1\n"
    new = "SEED = 2  # new\ntorch.manual_seed(2)\nrandom.seed(2)\nnp.random.seed(2)\nx = 1\n"
    assert trivial_change(old, new) == (
        f"{SEEDS} (SEED 1 -> 2, torch.manual_seed 1 -> 2, random.seed 1 -> 2 and 1 more)")
    seed_and_docstring = edit(("    torch.manual_seed(42)", "    torch.manual_seed(43)  # try another"),
                              ('"""Batches of a seeded loader."""', '"""Batches."""'))
    assert trivial_change(SOURCE, seed_and_docstring) == f"{SEEDS} (torch.manual_seed 42 -> 43)"


@pytest.mark.parametrize("pairs, reason", [
    ([("MATRIX_LR = 0.04  # Muon learning rate", "MATRIX_LR = 0.04  # the Muon learning rate")], COMMENTS),
    ([("    return MATRIX_LR * 2, loader", "    # doubled on purpose\n    return MATRIX_LR * 2, loader")],
     COMMENTS),
    ([("MATRIX_LR = 0.04  # Muon", "MATRIX_LR   =   0.04     # Muon")], COMMENTS),
    ([("    return batch, seed", "\n\n    return batch, seed   ")], COMMENTS),
    ([('"""Batches of a seeded loader."""', '"""Batches of a loader whose order is seeded."""')], DOCSTRINGS),
    ([('"""A train.py-like file."""\n', "")], DOCSTRINGS),
    ([("MATRIX_LR = 0.04", "MATRIX_LR = 4e-2")], FORMATTING),
    ([("    return MATRIX_LR * 2, loader", "    return (MATRIX_LR * 2), loader")], FORMATTING),
])
def test_comment_whitespace_docstring_and_formatting_changes_are_refused(pairs, reason):
    assert trivial_change(SOURCE, edit(*pairs)) == reason
    with pytest.raises(EditError) as info:
        apply_reply(reply_for(*pairs), SOURCE)
    assert str(info.value).startswith(f"refused: {reason}; the same program would train again")


def test_identical_source_changes_nothing():
    assert trivial_change(SOURCE, SOURCE) == NOTHING
    with pytest.raises(EditError, match="does not change train.py"):  # apply_edits says so first
        apply_reply(reply_for(("SEED = 42  # random seed", "SEED = 42  # random seed")), SOURCE)


@pytest.mark.parametrize("pairs", [
    [("    torch.manual_seed(42)", "    torch.manual_seed(137)"),
     ("MATRIX_LR = 0.04", "MATRIX_LR = 0.08")],                                    # seed plus a real change
    [("MATRIX_LR = 0.04", "MATRIX_LR = 0.05")],                                    # one character, not a seed
    [('WINDOW_PATTERN = "SSSL"', 'WINDOW_PATTERN = "SSLL"')],                      # a string, not a docstring
    [("    torch.manual_seed(42)", "    torch.manual_seed(SEED)")],                # a literal becomes a name
    [("    torch.manual_seed(42)", "    torch.manual_seed(42)\n    torch.cuda.manual_seed_all(42)")],  # added
    [("    np.random.seed(SEED)\n    random.seed(SEED)", "    random.seed(SEED)\n    np.random.seed(SEED)")],
    [("    loader = make_loader(8, seed=3)\n    return MATRIX_LR * 2, loader",
      "    data = make_loader(8, seed=3)\n    return MATRIX_LR * 2, data")],   # a rename
    [("def make_loader(batch, seed=0):", "def make_loader(batch, seed=1):")],  # a default, not a call
    [("make_loader(8, seed=3)", "make_loader(9, seed=3)")],                    # not the seed argument
])
def test_real_changes_are_accepted(pairs):
    assert trivial_change(SOURCE, edit(*pairs)) is None
    assert apply_reply(reply_for(*pairs), SOURCE)[1] == edit(*pairs)


def test_names_that_only_contain_seed_are_not_seeds():
    for old, new in [("SEEDLING = 1", "SEEDLING = 2"), ("reseed(1)", "reseed(2)"),
                     ("torch.manual_seed(42)", "torch.manual_seed(-42)"),
                     ("torch.manual_seed(1)", "torch.manual_seed(True)"),
                     ("SEED, X = 1, 2", "SEED, X = 3, 2"), ("SEED = X = 1", "SEED = X = 2")]:
        assert trivial_change(old + "\n", new + "\n") is None, (old, new)


def test_unparseable_sources_are_left_to_the_syntax_check():
    assert trivial_change(SOURCE, SOURCE + "def (:\n") is None
    assert trivial_change("def (:\n", SOURCE) is None


def test_the_shipped_train_py_seed_is_caught():
    hparams = pytest.importorskip("substrate.hparams")
    source = hparams.render_train_py("h100")
    assert source.count("torch.manual_seed(42)") == 1
    new = source.replace("torch.manual_seed(42)", "torch.manual_seed(137)")
    assert trivial_change(source, new) == f"{SEEDS} (torch.manual_seed 42 -> 137)"
