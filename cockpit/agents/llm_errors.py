"""What to do about each error an LLM call can raise: retry, give up, or re-ask.

ONE table (``LITELLM_ERRORS``) names every exception class defined in
``litellm.exceptions`` (litellm 1.106.2) with an action and a hint for the
person reading the message; ``tests/test_llm_errors.py`` fails when litellm
grows a class the table does not know. A second, small table
(``OTHER_ERRORS``) covers exceptions that reach us unmapped (the openai SDK's
own classes, httpx, built-in timeouts and connection errors).

Actions:

- ``retry``: transient; the same request may succeed later (timeouts, 429,
  5xx, dropped connections, malformed responses). Bounded by the agent's
  ``max_retries`` with exponential backoff; exhausted -> ``AgentFatal``.
- ``fatal``: a person must act (bad key, no access, unknown model or provider,
  a request the provider rejects, a budget or guardrail). Raised at once as
  ``AgentFatal``: asking again cannot help.
- ``reask``: the *prompt* must change: only ``ContextWindowExceededError``. The
  agent rebuilds the (stateless) prompt under a smaller token budget, dropping
  more history, and asks again; it counts as a retry.

Decisions worth knowing: ``ContentPolicyViolationError`` is ``retry`` (output
flags vary with sampling and an unattended night should not stall on one;
retries are bounded anyway); ``UnprocessableEntityError`` (422) and
``BudgetExceededError`` are ``fatal`` (the same request gets the same answer);
generic ``APIError``/``OpenAIError`` are ``retry`` (litellm uses them for
unmapped provider failures, mostly 5xx-like). Exceptions matched by neither
table are ``unknown``: the agent lets them propagate, so a bug in our code is
not disguised as a provider error.

This module does not import litellm (classification works on class names via
the MRO).
"""

from __future__ import annotations

from dataclasses import dataclass

RETRY = "retry"
FATAL = "fatal"
REASK = "reask"
UNKNOWN = "unknown"
_BY_STATUS = "status"  # decided by the HTTP status code (OTHER_ERRORS only)


@dataclass(frozen=True)
class ErrorRule:
    """``action``: RETRY, FATAL or REASK; ``hint``: what a person can do, one short clause."""

    action: str
    hint: str


_CHECK_KEY = "check the API key in the environment (e.g. OPENAI_API_KEY, ANTHROPIC_API_KEY)"
_CHECK_MODEL = "check the model name (litellm form provider/name, e.g. openai/gpt-4o-mini) and --api-base"
_CHECK_REQUEST = "the provider rejected the request: check the model's parameters and the provider docs"
_WAIT = "the provider is down, overloaded or unreachable: check its status and --api-base"
_PROXY = "a litellm proxy policy blocked the request: check the proxy's configuration"

# Every exception class defined in litellm.exceptions, by class name.
LITELLM_ERRORS: dict[str, ErrorRule] = {
    # transient: the same request may succeed later
    "APIConnectionError": ErrorRule(RETRY, _WAIT),
    "Timeout": ErrorRule(RETRY, "the provider did not answer within the timeout: raise timeout_s or check the server"),
    "RateLimitError": ErrorRule(RETRY, "rate limited (429): wait, lower the request rate or raise the quota"),
    "InternalServerError": ErrorRule(RETRY, _WAIT),
    "ServiceUnavailableError": ErrorRule(RETRY, _WAIT),
    "BadGatewayError": ErrorRule(RETRY, _WAIT),
    "MidStreamFallbackError": ErrorRule(RETRY, "the stream broke off mid-reply: " + _WAIT),
    "APIError": ErrorRule(RETRY, _WAIT),
    "OpenAIError": ErrorRule(RETRY, _WAIT),
    "MockException": ErrorRule(RETRY, "a litellm mock_response error (tests only)"),
    "APIResponseValidationError": ErrorRule(RETRY, "the provider sent a malformed response"),
    "JSONSchemaValidationError": ErrorRule(RETRY, "the provider's response did not match the JSON schema"),
    "ContentPolicyViolationError": ErrorRule(
        RETRY, "the provider's content policy refused the request: check program.md and the steering notes"),
    # the prompt must change
    "ContextWindowExceededError": ErrorRule(
        REASK, "the prompt exceeds the model's context window: set max_input_tokens lower or shorten train.py"),
    # a person must act
    "AuthenticationError": ErrorRule(FATAL, _CHECK_KEY),
    "PermissionDeniedError": ErrorRule(FATAL, "the key has no access to this model: " + _CHECK_KEY),
    "NotFoundError": ErrorRule(FATAL, _CHECK_MODEL),
    "ModelNotMappedError": ErrorRule(FATAL, _CHECK_MODEL),
    "LiteLLMUnknownProvider": ErrorRule(FATAL, _CHECK_MODEL),
    "BadRequestError": ErrorRule(FATAL, _CHECK_REQUEST),
    "InvalidRequestError": ErrorRule(FATAL, _CHECK_REQUEST),
    "UnsupportedParamsError": ErrorRule(FATAL, "the model does not accept a parameter (e.g. temperature): drop it"),
    "UnprocessableEntityError": ErrorRule(FATAL, _CHECK_REQUEST),
    "ImageFetchError": ErrorRule(FATAL, _CHECK_REQUEST),
    "VectorStoreSearchError": ErrorRule(FATAL, _CHECK_REQUEST),
    "PaymentRequiredError": ErrorRule(FATAL, "the provider wants payment (402): check the account's credit"),
    "BudgetExceededError": ErrorRule(FATAL, "the litellm budget is spent: raise it, then resume"),
    "RejectedRequestError": ErrorRule(FATAL, _PROXY),
    "GuardrailRaisedException": ErrorRule(FATAL, _PROXY),
    "BlockedPiiEntityError": ErrorRule(FATAL, _PROXY),
    "SensitiveDataRouteException": ErrorRule(FATAL, _PROXY),
    "ModifyResponseException": ErrorRule(FATAL, _PROXY),
}

# Exceptions that may reach us without litellm's mapping, by "module.QualName".
OTHER_ERRORS: dict[str, ErrorRule] = {
    "openai.APITimeoutError": ErrorRule(RETRY, LITELLM_ERRORS["Timeout"].hint),
    "openai.APIConnectionError": ErrorRule(RETRY, _WAIT),
    "openai.RateLimitError": LITELLM_ERRORS["RateLimitError"],
    "openai.InternalServerError": ErrorRule(RETRY, _WAIT),
    "openai.ConflictError": ErrorRule(RETRY, "the provider reported a conflict (409)"),
    "openai.AuthenticationError": ErrorRule(FATAL, _CHECK_KEY),
    "openai.PermissionDeniedError": LITELLM_ERRORS["PermissionDeniedError"],
    "openai.NotFoundError": ErrorRule(FATAL, _CHECK_MODEL),
    "openai.BadRequestError": ErrorRule(FATAL, _CHECK_REQUEST),
    "openai.UnprocessableEntityError": ErrorRule(FATAL, _CHECK_REQUEST),
    "openai.APIResponseValidationError": ErrorRule(RETRY, "the provider sent a malformed response"),
    "openai.APIStatusError": ErrorRule(_BY_STATUS, _WAIT),
    "openai.APIError": ErrorRule(_BY_STATUS, _WAIT),
    "httpx.TimeoutException": ErrorRule(RETRY, LITELLM_ERRORS["Timeout"].hint),
    "httpx.TransportError": ErrorRule(RETRY, _WAIT),
    "builtins.TimeoutError": ErrorRule(RETRY, LITELLM_ERRORS["Timeout"].hint),  # = asyncio.TimeoutError
    "builtins.ConnectionError": ErrorRule(RETRY, _WAIT),
}

_RETRY_STATUSES = frozenset({408, 409, 425, 429})


def _status_action(exc: BaseException) -> str:
    """RETRY for 408/409/425/429, 5xx or no status code; FATAL for other codes."""
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or status in _RETRY_STATUSES or status >= 500:
        return RETRY
    return FATAL


def rule_for(exc: BaseException) -> ErrorRule | None:
    """The rule of the most specific class of ``exc`` (walking its MRO) found in
    LITELLM_ERRORS (classes of ``litellm.exceptions``) or OTHER_ERRORS; None if none."""
    for cls in type(exc).__mro__:
        if cls.__module__ == "litellm.exceptions":
            rule = LITELLM_ERRORS.get(cls.__name__)
        else:
            rule = OTHER_ERRORS.get(f"{cls.__module__}.{cls.__qualname__}")
        if rule is not None:
            if rule.action == _BY_STATUS:
                return ErrorRule(_status_action(exc), rule.hint)
            return rule
    return None


def classify(exc: BaseException) -> str:
    """RETRY, FATAL or REASK for an error of an LLM call (most specific class first);
    UNKNOWN when no class in its MRO is in either table (not an LLM error: re-raise it)."""
    rule = rule_for(exc)
    return rule.action if rule is not None else UNKNOWN


def describe(exc: BaseException) -> str:
    """One line for a person: the error class, its HTTP status if any, and the
    provider's own message without litellm's repeated prefixes (<= 200 characters)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    for _ in range(4):  # "litellm.AuthenticationError: AuthenticationError: OpenAIException - msg"
        head, sep, rest = text.partition(": ")
        if sep and " " not in head and ("Error" in head or "Exception" in head or head.startswith("litellm.")):
            text = rest
    for marker in ("Exception - ", "Error - "):
        head, sep, rest = text.partition(marker)
        if sep and " " not in head:
            text = rest
    status = getattr(exc, "status_code", None)
    label = type(exc).__name__ + (f" ({status})" if isinstance(status, int) else "")
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{label}: {text}" if text else label
