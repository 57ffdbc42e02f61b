"""Hyper-parameters of train.py per harness profile, and the render that writes them in.

`substrate/train.py` carries the h100 (upstream) values. `cockpit init --profile P`
writes `render_train_py(P)` into the workspace: the same file with P's values
substituted into the `NAME = value  # comment` lines of its hyper-parameter section.
Only sizes change between profiles; the learning rates stay upstream's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

TRAIN_PY = Path(__file__).with_name("train.py")

# Upstream autoresearch baseline (one H100, 300 s, MAX_SEQ_LEN 2048): ~50M parameters.
_UPSTREAM = {
    "DEPTH": 8,
    "ASPECT_RATIO": 64,        # width 512, 4 heads of 128
    "HEAD_DIM": 128,
    "N_KV_HEAD": 0,
    "WINDOW_PATTERN": "SSSL",
    "TOTAL_BATCH_SIZE": 2**19,  # 2 x 128 x 2048
    "DEVICE_BATCH_SIZE": 128,
    "MATRIX_LR": 0.04,
    "EMBEDDING_LR": 0.6,
    "UNEMBEDDING_LR": 0.004,
    "SCALAR_LR": 0.5,
    "ADAM_BETA1": 0.8,
    "ADAM_BETA2": 0.95,
    "WEIGHT_DECAY": 0.2,
    "MUON_MOMENTUM_START": 0.85,
    "MUON_MOMENTUM_END": 0.95,
    "MUON_MOMENTUM_STEPS": 300,
    "MUON_BETA2": 0.95,
    "WARMUP_RATIO": 0.0,
    "WARMDOWN_RATIO": 0.5,
    "FINAL_LR_FRAC": 0.0,
}

HPARAMS: dict[str, dict[str, object]] = {
    "h100": dict(_UPSTREAM),
    # 2-core CPU, MAX_SEQ_LEN 256, 60 s budget: depth 4, width 128 (2 heads of 64), full
    # attention, 2,048 tokens per step = 8 rows of 256, no accumulation. Measured here at
    # 60 s: width 128 -> 203 steps, 6.8k tok/s, val_bpb 1.486; width 192 -> 131 steps, 1.545
    # (shared/NOTES.md: 192 wins only at 300 s).
    "cpu": {
        **_UPSTREAM,
        "DEPTH": 4,
        "ASPECT_RATIO": 32,
        "HEAD_DIM": 64,
        "WINDOW_PATTERN": "L",
        "TOTAL_BATCH_SIZE": 2048,
        "DEVICE_BATCH_SIZE": 8,
    },
    # Tests and smoke runs, MAX_SEQ_LEN 64: depth 2, width 64 (2 heads of 32); "SL" so the
    # banded (sliding-window) attention path runs; 512 tokens per step = 2 passes x 4 x 64
    # so gradient accumulation runs too.
    "tiny": {
        **_UPSTREAM,
        "DEPTH": 2,
        "ASPECT_RATIO": 32,
        "HEAD_DIM": 32,
        "WINDOW_PATTERN": "SL",
        "TOTAL_BATCH_SIZE": 512,
        "DEVICE_BATCH_SIZE": 4,
    },
}


def _literal(value: object) -> str:
    """Python source for a hyper-parameter value (strings in double quotes)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (bool, int, float)):
        return repr(value)
    raise ValueError(f"unsupported hyper-parameter value {value!r} ({type(value).__name__})")


def substitute(text: str, values: dict[str, object]) -> str:
    """Write each NAME's value into its `NAME = value  # comment` line of `text`, keeping
    the comment (at its column when it fits). ValueError if a NAME has no such line."""
    for name, value in values.items():
        pattern = re.compile(rf"^{re.escape(name)} = [^#\n]*?(?P<gap>\s*)(?P<comment>#.*)?$", re.MULTILINE)
        matches = list(pattern.finditer(text))
        if len(matches) != 1:
            found = "no line" if not matches else f"{len(matches)} lines"
            raise ValueError(f"hyper-parameter {name!r}: found {found} '{name} = ...' in train.py")
        m = matches[0]
        line = f"{name} = {_literal(value)}"
        if m.group("comment"):
            column = m.start("comment") - m.start()
            line = line.ljust(column - 1) + " " + m.group("comment")
        text = text[:m.start()] + line + text[m.end():]
    return text


def render_train_py(profile: str, source: str | None = None) -> str:
    """train.py's text with the hyper-parameters of `profile` ("h100", "cpu", "tiny")."""
    if profile not in HPARAMS:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(HPARAMS)}")
    text = TRAIN_PY.read_text(encoding="utf-8") if source is None else source
    return substitute(text, HPARAMS[profile])
