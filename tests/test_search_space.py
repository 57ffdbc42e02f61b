"""The optuna agent's search space read from train.py (cockpit.rules.search_space): every
``search:`` form, the inferred ranges, and the marks the shipped train.py carries."""

from __future__ import annotations

import pytest

from cockpit.rules.search_space import SpaceError, infer, read_space
from cockpit.rules.constants import read_hyperparams
from substrate.hparams import HPARAMS, render_train_py


def one(line: str):
    space = read_space(line + "\n")
    assert len(space) <= 1
    return space[0] if space else None


@pytest.mark.parametrize("line, kind, low, high, marked", [
    ("MATRIX_LR = 0.04  # search: log 0.005..0.2", "log", 0.005, 0.2, True),
    ("MATRIX_LR = 0.04  # Muon learning rate; search: log 0.005..0.2", "log", 0.005, 0.2, True),
    ("WEIGHT_DECAY = 0.0  # search: float 0..0.5", "float", 0.0, 0.5, True),
    ("DEPTH = 4  # search: int 2..8", "int", 2, 8, True),
    ("STEPS = 300  # search: logint 50..1000", "logint", 50, 1000, True),
    ("TOTAL_BATCH_SIZE = 2**19  # search: pow2 2**16..2**21", "pow2", 2 ** 16, 2 ** 21, True),
    ("DEVICE_BATCH_SIZE = 128  # search: pow2 32..256", "pow2", 32, 256, True),
    ("ADAM_BETA2 = 0.95  # search: beta 0.8..0.999", "beta", 0.8, 0.999, True),
    ("MATRIX_LR = 0.04", "log", 0.005, 0.32, False),
    ("MATRIX_LR = 0.04  # a comment without a mark", "log", 0.005, 0.32, False),
    ("WARMDOWN_RATIO = 0.5", "log", 0.0625, 1.0, False),  # a ratio stays <= 1
    ("ADAM_BETA1 = 0.8", "beta", 0.5, 0.975, False),  # 1 - x from x8 (at most 0.5) to /8
    ("MUON_MOMENTUM_END = 0.95", "beta", 0.6, 0.99375, False),
    ("DEPTH = 4", "int", 1, 7, False),  # small ints +-3, at least 1
    ("DEPTH = 12", "int", 9, 15, False),
    ("ASPECT_RATIO = 64", "pow2", 16, 256, False),  # powers of two by exponent, /4 to x4
    ("DEVICE_BATCH_SIZE = 8", "pow2", 2, 32, False),  # a batch size that is a power of two
    ("TOTAL_BATCH_SIZE = 2**19", "pow2", 2 ** 17, 2 ** 21, False),
    ("MUON_MOMENTUM_STEPS = 300", "logint", 37, 2400, False),
])
def test_each_form_gives_its_range(line, kind, low, high, marked):
    dimension = one(line)
    assert (dimension.kind, dimension.marked) == (kind, marked)
    assert dimension.low == pytest.approx(low) and dimension.high == pytest.approx(high)


@pytest.mark.parametrize("line", [
    "HEAD_DIM = 128  # search: off",
    "WARMUP_RATIO = 0.0",  # no scale to infer from 0
    "N_KV_HEAD = 0  # 0 = one per query head",
    "SEED = 42",  # a seed is not a hyper-parameter
    'WINDOW_PATTERN = "SSSL"  # search: log 1..2',  # not a number: not a constant of the space
])
def test_what_is_left_out(line):
    assert one(line) is None


@pytest.mark.parametrize("line, message", [
    ("MATRIX_LR = 0.04  # search: lg 0.005..0.2", "reads neither 'off' nor KIND LOW..HIGH"),
    ("MATRIX_LR = 0.04  # search: log 0.005-0.2", "reads neither 'off' nor KIND LOW..HIGH"),
    ("MATRIX_LR = 0.04  # search: log 0.2..0.005", "is empty"),
    ("MATRIX_LR = 0.04  # search: log 0..0.2", "must be above 0"),
    ("MATRIX_LR = 0.04  # search: log x..0.2", "'x' is not a number"),
    ("MATRIX_LR = 0.4  # search: log 0.005..0.2", "outside its range"),
    ("ADAM_BETA2 = 0.95  # search: beta 0.8..1", "inside (0, 1)"),
    ("DEPTH = 4  # search: int 2..8.5", "whole bounds"),
    ("DEVICE_BATCH_SIZE = 128  # search: pow2 24..256", "powers of two"),
])
def test_a_bad_mark_names_its_line(line, message):
    with pytest.raises(SpaceError, match="train.py:2: ") as caught:
        read_space("# header\n" + line + "\n")
    assert message in str(caught.value)


@pytest.mark.parametrize("line, value, literal", [
    ("MATRIX_LR = 0.04  # search: log 0.005..0.2", 0.0311234, "0.03112"),
    ("MATRIX_LR = 4e-2  # search: log 0.005..0.2", 0.0311234, "0.03112"),
    ("WEIGHT_DECAY = 0.2  # search: float 0..0.5", 0.0, "0.0"),
    ("DEPTH = 4  # search: int 2..8", 6.0, "6"),
    ("TOTAL_BATCH_SIZE = 2**19", 2.0 ** 20, "2**20"),
    ("TOTAL_BATCH_SIZE = 524288", 2.0 ** 20, "1048576"),
])
def test_a_value_is_written_as_a_literal_like_the_old_one(line, value, literal):
    assert one(line).literal(value) == literal


def test_the_shipped_train_py_marks_the_knobs_that_matter_and_reads_on_every_profile():
    marked = {d.name: d for d in read_space(render_train_py("h100")) if d.marked}
    assert {"MATRIX_LR", "EMBEDDING_LR", "UNEMBEDDING_LR", "SCALAR_LR", "ADAM_BETA1", "ADAM_BETA2",
            "WEIGHT_DECAY", "WARMUP_RATIO", "WARMDOWN_RATIO", "FINAL_LR_FRAC"} <= set(marked)
    for profile in HPARAMS:
        names = {d.name for d in read_space(render_train_py(profile))}
        assert "HEAD_DIM" not in names  # marked off: attention kernels take few head sizes
        assert {"DEPTH", "TOTAL_BATCH_SIZE", "MATRIX_LR"} <= names  # sizes inferred from each profile's value


def test_infer_is_none_for_zero():
    zero, positive = read_hyperparams("A_LR = 0.0\nB_LR = 0.5\n")
    assert infer(zero) is None and infer(positive).kind == "log"
