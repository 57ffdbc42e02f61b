"""Secrets never reach a file (cockpit.rules.redact): which values are secrets, and their
replacement in text, JSON-like data and engine events."""

from __future__ import annotations

from dataclasses import dataclass

from cockpit.events import EngineMessage, LogLine
from cockpit.rules.redact import MIN_SECRET, REDACTED, redact, redact_data, redact_event, secret_values

KEY = "sk-live-0123456789abcdef"


def test_secret_values_are_the_long_values_of_secret_names_longest_first():
    env = {"OPENAI_API_KEY": "abcdefgh", "HF_TOKEN": "abcdefghijkl", "DB_PASSWORD": "abcdefg",
           "PATH": "/usr/bin:/usr/local/bin", "SAME_TOKEN": "abcdefgh", "Z_SECRET": "zzzzzzzzz"}
    assert MIN_SECRET == 8
    # 8 characters is a secret, 7 is not; a value two names share is listed once; by length, not
    # alphabetically
    assert secret_values(env) == ("abcdefghijkl", "zzzzzzzzz", "abcdefgh")
    assert secret_values({}) == ()


def test_secret_values_default_to_the_environment(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-0123456789")
    assert "tok-0123456789" in secret_values()
    assert redact("use tok-0123456789 now") == f"use {REDACTED} now"


def test_a_key_that_contains_another_is_replaced_whole():
    values = secret_values({"A_TOKEN": "abcdefgh", "B_TOKEN": "abcdefgh-and-more"})
    assert redact("x abcdefgh-and-more y abcdefgh", values) == f"x {REDACTED} y {REDACTED}"


def test_given_values_replace_the_environments(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-0123456789")
    assert redact("tok-0123456789 and zzzzzzzzzz", ["zzzzzzzzzz"]) == f"tok-0123456789 and {REDACTED}"
    assert redact("tok-0123456789", []) == "tok-0123456789"
    assert redact(f"key {KEY}.", []) == f"key {REDACTED}."  # key-shaped strings whatever their source
    assert redact("nothing here", []) == "nothing here"


def test_data_is_redacted_string_by_string_keeping_its_shape():
    values = ["secret-value-1"]
    data = {"a": "x secret-value-1", "b": ["secret-value-1", 3, None], "c": ("secret-value-1", 1.5),
            "d": {"e": KEY}, "n": 7}
    clean = redact_data(data, values)
    assert clean == {"a": f"x {REDACTED}", "b": [REDACTED, 3, None], "c": (REDACTED, 1.5),
                     "d": {"e": REDACTED}, "n": 7}
    assert type(clean["c"]) is tuple and type(clean["b"]) is list
    assert data["a"] == "x secret-value-1"  # the input is not changed
    assert redact_data("secret-value-1 and", values) == f"{REDACTED} and"
    assert redact_data(1.25, values) == 1.25


def test_data_defaults_to_the_environments_secrets(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-0123456789")
    assert redact_data({"k": ["tok-0123456789"]}) == {"k": [REDACTED]}


@dataclass(frozen=True)
class Note:
    text: str
    extra: dict
    count: int


def test_an_event_gets_its_text_fields_redacted(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-0123456789")
    event = LogLine(3, "printed tok-0123456789")
    clean = redact_event(event)
    assert clean == LogLine(3, f"printed {REDACTED}") and event.text == "printed tok-0123456789"
    note = redact_event(Note("ok", {"key": "tok-0123456789"}, 5))
    assert note == Note("ok", {"key": REDACTED}, 5)


def test_an_event_without_secrets_is_the_same_object(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-0123456789")
    event = EngineMessage("all fine", "warning")
    assert redact_event(event) is event
    note = Note("fine", {"k": "v"}, 2)
    assert redact_event(note) is note
