"""Secrets never reach a file cockpit writes.

Everything cockpit writes passes through ``redact`` first: results.tsv
descriptions, records.jsonl objects, the journal, run logs, commit messages,
and every engine event (``redact_event``: what the UI shows, headless mode
prints and a daemon's replay log keeps). Two things are replaced by ``[redacted]``:

- the value of every environment variable whose name says it is a secret
  (``OPENAI_API_KEY``, ``HF_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ``*_PASSWORD``,
  ...; see ``SECRET_NAME``), when it is at least ``MIN_SECRET`` characters long;
- strings shaped like provider keys whatever their source (``sk-...``,
  ``sk-ant-...``, ``AIza...``, ``ghp_...``, ``hf_...``, ``xoxb-...``).

A key the agent writes into train.py's code is not caught (code is not
rewritten); anything it says in a description or a reply is.
"""

from __future__ import annotations

import os
import re
from dataclasses import fields, replace
from typing import Mapping, Optional, Sequence

REDACTED = "[redacted]"
MIN_SECRET = 8  # shorter values ("1", "true") are not treated as secrets
SECRET_NAME = re.compile(r"(?:^|_)(?:API_KEY|APIKEY|TOKEN|SECRET|SECRET_KEY|ACCESS_KEY|PASSWORD|PASSWD)$",
                         re.IGNORECASE)
KEY_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-[A-Za-z0-9_\-]{12,}|AIza[0-9A-Za-z_\-]{30,}|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|hf_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9\-]{10,})")


def secret_values(environ: Optional[Mapping[str, str]] = None) -> tuple[str, ...]:
    """Values of the secret-named variables of ``environ`` (default ``os.environ``),
    longest first (so a key that contains another is replaced whole)."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET}
    return tuple(sorted(values, key=len, reverse=True))


def redact(text: str, values: Optional[Sequence[str]] = None) -> str:
    """``text`` with every secret value (``values``, default: the environment's
    now) and every key-shaped string replaced by ``[redacted]``."""
    for value in secret_values() if values is None else values:
        if value in text:
            text = text.replace(value, REDACTED)
    return KEY_SHAPES.sub(REDACTED, text)


def redact_data(value, values: Optional[Sequence[str]] = None):
    """``value`` (JSON-like: dicts, lists, tuples, strings, numbers) with every string redacted."""
    values = secret_values() if values is None else values
    if isinstance(value, str):
        return redact(value, values)
    if isinstance(value, dict):
        return {k: redact_data(v, values) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_data(v, values) for v in value)
    return value


def redact_event(event):
    """``event`` (a frozen dataclass of cockpit.events) with its text fields
    redacted; the same object when nothing changed."""
    values = secret_values()
    changed = {}
    for f in fields(event):
        value = getattr(event, f.name)
        if isinstance(value, (str, dict, list, tuple)):
            clean = redact_data(value, values)
            if clean != value:
                changed[f.name] = clean
    return replace(event, **changed) if changed else event
