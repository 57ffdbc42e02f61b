"""train.py's numeric constants (cockpit.rules.constants) at their edges: every literal
form and its kind, what a constant records, which names are left out, and how a new
float value is written back so that the SEARCH/REPLACE line still reads like the old."""

from __future__ import annotations

import pytest

from cockpit.rules.constants import HyperParam, format_float, literal_value, read_hyperparams


@pytest.mark.parametrize("literal, expected", [
    ("8", (8.0, "int")),
    ("1_000", (1000.0, "int")),  # the underscores go before int()
    (" 8 ", (8.0, "int")),
    ("0.04", (0.04, "float")),
    ("1_000.5", (1000.5, "float")),
    ("1e-3", (0.001, "float")),
    (".5", (0.5, "float")),
    ("2**19", (524288.0, "pow")),
    ("3 ** 4", (81.0, "pow")),  # base and exponent both read, in that order
    ("x", None),
    ("1 - 2", None),
    ("2**", None),
])
def test_a_literal_reads_as_its_value_and_kind(literal, expected):
    assert literal_value(literal) == expected


def test_a_constant_keeps_its_line_its_literal_and_its_value():
    line = "TOTAL_BATCH_SIZE: int = 2 ** 19   # tokens per step"
    (param,) = read_hyperparams("import torch\n" + line + "\n")
    assert param == HyperParam("TOTAL_BATCH_SIZE", line, "2 ** 19", 524288.0, "pow")


def test_constants_come_in_file_order_and_only_numeric_top_level_ones():
    source = ("DEPTH = 8\nMATRIX_LR = 0.04  # Muon\nNAME = 'x'\n  INNER = 3\nlower = 2\n"
              "ADAM_BETAS = (0.8, 0.95)\nWARMUP = 1 - 2\nEPS = 1e-10\n")
    params = read_hyperparams(source)
    assert [(p.name, p.literal, p.value, p.kind) for p in params] == [
        ("DEPTH", "8", 8.0, "int"), ("MATRIX_LR", "0.04", 0.04, "float"), ("EPS", "1e-10", 1e-10, "float")]


def test_a_name_assigned_twice_and_seeds_and_hardware_constants_are_left_out():
    source = "A = 1.0\nB = 3\nA = 2.0\nSEED = 42\nDATA_SEED = 1\nH100_PEAK_FLOPS = 989.5e12\nC = 4\n"
    assert [p.name for p in read_hyperparams(source)] == ["B", "C"]
    assert [p.name for p in read_hyperparams("A = 1.0\nA = 2.0\nA = 3.0\n")] == []
    assert read_hyperparams("") == []


@pytest.mark.parametrize("value, like, text", [
    (0.1 + 0.2, "0.04", "0.3"),  # rounded to 10 significant digits first
    (3.0, "0.5", "3.0"),
    (0.0311, "0.04", "0.0311"),
    (1234567.0, "0.5", "1234567.0"),  # plain notation: repr
    (1234567.0, "1e6", "1.23457e+06"),  # the old literal used e-notation: %g
    (1234567.0, "1E6", "1.23457e+06"),  # upper-case E counts as e-notation
    (1e6, "1e5", "1e+06"),  # %g's e-notation needs no ".0"
    (3.0, "1e0", "3.0"),  # %g wrote "3": ".0" keeps it a float literal
    (3.5, "1e0", "3.5"),
    (1e-10, "1e-9", "1e-10"),
])
def test_a_float_is_written_like_the_old_literal(value, like, text):
    assert format_float(value, like) == text
    assert float(text) == pytest.approx(value, rel=1e-5)
