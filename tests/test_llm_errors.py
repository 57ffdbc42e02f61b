"""The retry/fatal/reask table covers every exception class litellm defines."""

from __future__ import annotations

import inspect
import os

import httpx
import openai
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported
import litellm.exceptions as lx  # noqa: E402  (~3 s, once per process)

from cockpit.agents.llm_errors import (  # noqa: E402
    FATAL, LITELLM_ERRORS, REASK, RETRY, UNKNOWN, classify, describe, rule_for,
)


def litellm_exception_classes() -> dict[str, type]:
    """Every Exception subclass defined in litellm.exceptions (not merely imported there)."""
    return {name: cls for name, cls in inspect.getmembers(lx, inspect.isclass)
            if issubclass(cls, Exception) and cls.__module__ == lx.__name__}


def test_every_litellm_exception_is_in_the_table():
    missing = sorted(set(litellm_exception_classes()) - set(LITELLM_ERRORS))
    assert not missing, f"litellm.exceptions has classes the table does not know: {missing}"


def test_table_names_only_real_classes_with_valid_actions():
    stale = sorted(set(LITELLM_ERRORS) - set(litellm_exception_classes()))
    assert not stale, f"the table names classes litellm no longer defines: {stale}"
    assert {rule.action for rule in LITELLM_ERRORS.values()} <= {RETRY, FATAL, REASK}
    assert all(rule.hint for rule in LITELLM_ERRORS.values())


def test_every_class_classifies_by_its_own_entry():
    for name, cls in litellm_exception_classes().items():
        instance = cls.__new__(cls)  # classification reads the class, not the constructor's fields
        assert classify(instance) == LITELLM_ERRORS[name].action, name


@pytest.mark.parametrize("exc, action", [
    (lx.RateLimitError(message="slow down", llm_provider="openai", model="m"), RETRY),
    (lx.Timeout(message="timed out", model="m", llm_provider="openai"), RETRY),
    (lx.APIConnectionError(message="refused", llm_provider="openai", model="m"), RETRY),
    (lx.ServiceUnavailableError(message="overloaded", llm_provider="openai", model="m"), RETRY),
    (lx.AuthenticationError(message="bad key", llm_provider="openai", model="m"), FATAL),
    (lx.NotFoundError(message="no such model", model="m", llm_provider="openai"), FATAL),
    (lx.BadRequestError(message="bad", model="m", llm_provider="openai"), FATAL),
    (lx.ContextWindowExceededError(message="too long", model="m", llm_provider="openai"), REASK),
    (lx.BudgetExceededError(current_cost=2.0, max_budget=1.0), FATAL),
])
def test_real_instances(exc, action):
    assert classify(exc) == action


def test_most_specific_class_wins():
    # ContextWindowExceededError and ContentPolicyViolationError are BadRequestErrors (fatal)
    assert issubclass(lx.ContextWindowExceededError, lx.BadRequestError)
    assert classify(lx.ContextWindowExceededError.__new__(lx.ContextWindowExceededError)) == REASK
    assert classify(lx.ContentPolicyViolationError.__new__(lx.ContentPolicyViolationError)) == RETRY
    assert classify(lx.MidStreamFallbackError.__new__(lx.MidStreamFallbackError)) == RETRY


def test_a_new_litellm_subclass_falls_back_to_its_base():
    NewError = type("NewError", (lx.BadRequestError,), {"__module__": lx.__name__})
    assert classify(NewError.__new__(NewError)) == FATAL


def _status_error(status: int) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    return openai.APIStatusError("raw", response=httpx.Response(status, request=request), body=None)


def test_unmapped_errors_from_the_sdk_and_the_runtime():
    assert classify(_status_error(503)) == RETRY
    assert classify(_status_error(429)) == RETRY
    assert classify(_status_error(418)) == FATAL
    assert classify(openai.APITimeoutError(request=httpx.Request("POST", "http://127.0.0.1/"))) == RETRY
    assert classify(httpx.ReadTimeout("slow")) == RETRY
    assert classify(httpx.RemoteProtocolError("dropped")) == RETRY
    assert classify(TimeoutError()) == RETRY
    assert classify(ConnectionResetError()) == RETRY


def test_bugs_are_not_llm_errors():
    for exc in (ValueError("x"), KeyError("k"), TypeError("t"), RuntimeError("r")):
        assert classify(exc) == UNKNOWN
        assert rule_for(exc) is None


def test_describe_is_one_short_line_without_litellm_prefixes():
    exc = lx.AuthenticationError(message="AuthenticationError: OpenAIException - Incorrect API key provided: x.\n"
                                 "more detail", llm_provider="openai", model="m")
    line = describe(exc)
    assert line == "AuthenticationError (401): Incorrect API key provided: x."
    long = describe(lx.APIError(status_code=500, message="y" * 500, llm_provider="openai", model="m"))
    assert "\n" not in long and len(long) < 240
