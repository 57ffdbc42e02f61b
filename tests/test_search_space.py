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


@pytest.mark.parametrize("line, described", [
    # a beta at 1 has no gap to scale: a plain float, log x/8..x8
    ("ADAM_BETA2 = 1.0", "ADAM_BETA2 = 1.0: log 0.125..8 (inferred)"),
    # 1 - x above 0.5: the range reaches down to the value, not past it
    ("MUON_MOMENTUM = 0.3", "MUON_MOMENTUM = 0.3: beta 0.3..0.9125 (inferred)"),
    ("WARMDOWN_RATIO = 1.0", "WARMDOWN_RATIO = 1.0: log 0.125..1 (inferred)"),  # a ratio at 1 tops out at 1
    ("LOSS_RATIO = 2.0", "LOSS_RATIO = 2.0: log 0.25..16 (inferred)"),  # above 1 it is no fraction
    ("FINAL_LR_FRAC = 0.05", "FINAL_LR_FRAC = 0.05: log 0.00625..0.4 (inferred)"),  # x8 while below 1
    ("EMBEDDING_LR = 0.6", "EMBEDDING_LR = 0.6: log 0.075..4.8 (inferred)"),  # only ratios stop at 1
    ("WIDTH = 16", "WIDTH = 16: pow2 4..64 (inferred)"),  # 16 is the smallest size taken as a power of two
    ("N_PAIRS = 2**3", "N_PAIRS = 2**3: pow2 2..32 (inferred)"),  # a 2**n literal however small
    ("DEVICE_BATCH_SIZE = 1", "DEVICE_BATCH_SIZE = 1: pow2 1..4 (inferred)"),
    ("DEVICE_BATCH_SIZE = 2", "DEVICE_BATCH_SIZE = 2: pow2 1..8 (inferred)"),  # never below 1
    ("DEVICE_BATCH_SIZE = 3", "DEVICE_BATCH_SIZE = 3: int 1..6 (inferred)"),  # a batch size, no power of two
    ("N_TOKENS = 3**4", "N_TOKENS = 3**4: logint 10..648 (inferred)"),  # a power, not of two
    ("STEPS = 17", "STEPS = 17: logint 2..136 (inferred)"),
    ("DEPTH = 1", "DEPTH = 1: int 1..4 (inferred)"),
    ("MATRIX_LR = 0.04  # search: log 0.005..0.2", "MATRIX_LR = 0.04: log 0.005..0.2 (marked)"),
    ("EPS = 1e-8  # search: log 1.23456789e-9..1e-7", "EPS = 1e-8: log 1.23457e-09..1e-07 (marked)"),
    ("TOTAL_BATCH_SIZE = 2**19", "TOTAL_BATCH_SIZE = 2**19: pow2 131072..2097152 (inferred)"),
])
def test_the_start_up_line_names_each_range_and_where_it_came_from(line, described):
    assert one(line).describe() == described


@pytest.mark.parametrize("line, kind, low, high", [
    ("MATRIX_LR = 0.04  # search: log 0.005..0.2; the Muon rate", "log", 0.005, 0.2),  # free text after ';'
    ("MATRIX_LR = 0.04  # search:   log 0.005..0.2   ", "log", 0.005, 0.2),
    ("STEPS = 300  # search: logint 1..1000", "logint", 1, 1000),
    ("DEVICE_BATCH_SIZE = 8  # search: pow2 1..256", "pow2", 1, 256),  # 1 = 2**0
    ("MATRIX_LR = 0.2  # search: log 0.005..0.2", "log", 0.005, 0.2),  # the value on a bound
    ("MATRIX_LR = 0.005  # search: log 0.005..0.2", "log", 0.005, 0.2),
])
def test_more_marked_forms(line, kind, low, high):
    dimension = one(line)
    assert (dimension.kind, dimension.low, dimension.high, dimension.marked) == (kind, low, high, True)


@pytest.mark.parametrize("line", ["HEAD_DIM = 128  # search: off; attention kernels take few head sizes",
                                  "HEAD_DIM = 128  # search:off  "])
def test_off_with_text_or_blanks_around_it(line):
    assert one(line) is None


@pytest.mark.parametrize("line, message", [
    ("MATRIX_LR = 0.04  # search: log 0.04..0.04", "is empty"),  # LOW must be below HIGH, not equal
    ("MATRIX_LR = 0.04  # search: log 0.005..inf", "'inf' is not a finite number"),
    ("MATRIX_LR = 0.04  # search: log nan..0.2", "'nan' is not a finite number"),
    ("STEPS = 300  # search: logint 0..1000", "a logint range must be above 0"),
    ("ADAM_BETA2 = 0.95  # search: beta 0..0.999", "inside (0, 1)"),
    ("DEPTH = 4  # search: int 2.5..8", "whole bounds"),
    ("STEPS = 300  # search: logint 50.5..1000", "logint range needs whole bounds"),
    ("DEVICE_BATCH_SIZE = 8  # search: pow2 0.5..256", "pow2 range needs whole bounds"),
    ("DEVICE_BATCH_SIZE = 8  # search: pow2 0..256", "powers of two"),
    ("DEPTH = 4  # search: lg 2..8", "(KIND one of log, float, int, logint, pow2, beta)"),
])
def test_more_bad_marks(line, message):
    with pytest.raises(SpaceError, match="train.py:1: ") as caught:
        read_space(line + "\n")
    assert message in str(caught.value)


def test_the_line_named_is_the_constants_own_and_the_path_the_one_given():
    source = "import torch\n\nDEPTH = 4\nMATRIX_LR = 0.04  # search: log 0.05..0.2\n"
    with pytest.raises(SpaceError, match=r"^programs/x/train\.py:4: MATRIX_LR = 0\.04 is outside its range "
                                         r"0\.05\.\.0\.2$"):
        read_space(source, "programs/x/train.py")


def test_bounds_hold_to_1e_12_relative():
    unit = one("X_LR = 0.5  # search: float 0..1")
    assert unit.contains(0.0) and unit.contains(1.0)
    assert unit.contains(-1e-12) and unit.contains(1.0 + 1e-12)  # the slack of a range within 1 is 1e-12
    assert not unit.contains(-1.5e-12) and not unit.contains(1.0 + 1.5e-12)
    half = one("X_FRAC = 0.1  # search: float 0..0.5")  # a range within 1 keeps the slack of 1
    assert half.contains(0.5 + 0.9e-12) and not half.contains(0.5 + 1.5e-12)
    wide = one("STEPS = 300  # search: int 1..1000")  # the slack scales with the largest bound
    assert wide.contains(1000 * (1 + 0.9e-12)) and not wide.contains(1000 * (1 + 1.5e-12))
    negative = one("SHIFT = 5  # search: float -1000..10")
    assert negative.contains(-1000 * (1 + 0.9e-12)) and not negative.contains(-1000 * (1 + 1.5e-12))


@pytest.mark.parametrize("line, value, literal", [
    ("STEPS = 300  # search: logint 50..1000", 417.6, "418"),
    ("DEVICE_BATCH_SIZE = 128  # search: pow2 32..256", 64.0, "64"),  # a pow2 of a plain int stays plain
    ("TOTAL_BATCH_SIZE = 2**19  # search: pow2 1..2**21", 1.0, "2**0"),
    ("TOTAL_BATCH_SIZE = 2**4  # search: int 2..20", 5.0, "5"),  # a power searched as an int is written as one
    ("MATRIX_LR = 0.04  # search: log 0.005..0.2", 0.123456, "0.1235"),
    ("ADAM_BETA2 = 0.95  # search: beta 0.8..0.999", 0.99, "0.99"),
    ("EPS = 1e-8  # search: log 1e-9..1e-7", 1.23456e-8, "1.235e-08"),
])
def test_more_literals(line, value, literal):
    assert one(line).literal(value) == literal
