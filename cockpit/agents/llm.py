"""An LLM agent through litellm: any provider litellm speaks, or a local
OpenAI-compatible server (``model="openai/<name>", api_base="http://127.0.0.1:PORT/v1"``).

litellm is imported lazily, in a worker thread, on the first ``propose`` (its
import takes ~3 s and must never be on cockpit's start-up path); before that
``LITELLM_LOCAL_MODEL_COST_MAP=True`` is set unless already set, so the import
does not fetch the cost map from the internet. Importing this module does not
import litellm.

Keys come only from the environment (litellm reads OPENAI_API_KEY,
ANTHROPIC_API_KEY, ... itself); for an ``api_base`` server when the provider's
key is not set, a placeholder key is sent.

Retries are ours, not litellm's: litellm's ``num_retries`` retries every error
(401 included) through tenacity for most providers, and for OpenAI-style
providers hands it to the openai SDK, which also retries twice by default. We
pass ``num_retries=0, max_retries=0`` and retry what ``cockpit.agents.llm_errors``
calls transient, with exponential backoff and jitter (and a provider's
Retry-After, capped), up to ``max_retries`` times.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any, Optional

from cockpit.agents.base import AgentFatal, ProposalContext
from cockpit.agents.llm_errors import FATAL, REASK, ErrorRule, describe, rule_for
from cockpit.agents.llm_response import assistant_text, model_window, provider_of, retry_after_s
from cockpit.agents.llm_usage import CallUsage, UsageTotals
from cockpit.agents.prompt import build_messages


PLACEHOLDER_KEY = "sk-no-key"  # sent to an api_base server when no provider key is set
MAX_BACKOFF_S = 30.0  # cap of one backoff sleep, Retry-After included (seconds)
REASK_SHRINK = 0.75  # on a context-window error the prompt is rebuilt to this fraction of its tokens


def load_litellm() -> Any:
    """Import litellm (once per process; ~3 s) with the cost map read locally, its
    stdout banners off and Hugging Face tokenizer downloads off (token counts for
    llama-style names fall back to tiktoken instead of fetching a tokenizer)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.disable_hf_tokenizer_download = True
    return litellm


class LiteLLMAgent:
    """Proposes edits by asking an LLM through litellm (see module docstring).

    ``model``: litellm's model string (``openai/gpt-4o-mini``, ``anthropic/...``,
    ``openai/<name>`` with ``api_base`` for a local server); also the agent's ``name``.
    ``api_base``: base URL of an OpenAI-compatible server (None: the provider's).
    ``temperature``: sampling temperature (None: the provider's default).
    ``timeout_s``: seconds one request may take (streaming: the wait for each chunk).
    ``max_retries``: retries after the first attempt (>= 0).
    ``stream``: receive the reply as SSE chunks and assemble it.
    ``max_input_tokens``: the model's input window in tokens (None: litellm's model
    info, or no trimming when litellm does not know the model).
    ``max_output_tokens``: ``max_tokens`` of the request (None: provider default).
    ``backoff_s``: first backoff sleep in seconds, doubled per retry, jittered x0.5-1.
    Unsupported OpenAI parameters are dropped by litellm (``drop_params``).

    After each success, ``last_usage`` (CallUsage) and ``totals`` (UsageTotals)
    are updated; ``usage_record()`` gives both as one dict.
    """

    def __init__(
        self,
        model: str,
        *,
        api_base: Optional[str] = None,
        temperature: Optional[float] = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        stream: bool = False,
        max_input_tokens: Optional[int] = None,
        max_output_tokens: Optional[int] = None,
        backoff_s: float = 1.0,
    ) -> None:
        if not model:
            raise ValueError("the litellm agent needs a model, e.g. openai/gpt-4o-mini")
        if max_retries < 0 or timeout_s <= 0:
            raise ValueError("max_retries must be >= 0 and timeout_s > 0")
        self.name = model
        self.model = model
        self.api_base = api_base
        self.temperature = temperature
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.stream = stream
        self.max_input_tokens = max_input_tokens
        self.max_output_tokens = max_output_tokens
        self.backoff_s = backoff_s
        self.last_usage: Optional[CallUsage] = None
        self.totals = UsageTotals()
        self._litellm: Any = None
        self._api_key: Optional[str] = None
        self._missing_keys: list[str] = []
        self._prompt_cap: Optional[int] = None  # learned from a context-window error (tokens)

    def usage_record(self) -> dict:
        """``{"model", "last": CallUsage dict or None, "totals": UsageTotals dict}``."""
        return {"model": self.model, "last": self.last_usage.as_dict() if self.last_usage else None,
                "totals": self.totals.as_dict()}

    async def propose(self, context: ProposalContext) -> str:
        """Ask the model for a reply to ``context``; return its text ("" if it sent none).

        Raises AgentFatal (one line: model, error, provider, what to do) on a fatal
        error, when retries are exhausted, or when the prompt cannot fit the window.
        Exceptions that are not LLM errors (bugs) and cancellation propagate.
        """
        if self._litellm is None:
            await asyncio.to_thread(self._load)
        self._check_keys()
        messages = await asyncio.to_thread(self._messages, context)
        retries, failed_s = 0, 0.0
        while True:
            started = time.monotonic()
            try:
                text, response = await self._request(messages)
            except Exception as exc:  # classified below; unknown ones re-raised as they are
                rule = rule_for(exc)
                if rule is None:
                    raise
                failed_s += time.monotonic() - started
                self._give_up_if_needed(exc, rule, retries)
                retries += 1
                if rule.action == REASK:
                    messages = await asyncio.to_thread(self._shrink, context, messages)
                else:
                    pause = self._backoff(retries, exc)
                    failed_s += pause
                    await asyncio.sleep(pause)
                continue
            latency = time.monotonic() - started
            self.last_usage = await asyncio.to_thread(self._usage, response, messages, text, latency, retries, failed_s)
            self.totals.add(self.last_usage)
            return text

    # -- set-up -------------------------------------------------------------

    def _load(self) -> None:
        """Import litellm; resolve the window and whether a placeholder key is needed."""
        litellm = load_litellm()
        if self.max_input_tokens is None:
            self.max_input_tokens = model_window(litellm, self.model)
        try:
            self._missing_keys = list(litellm.validate_environment(self.model).get("missing_keys") or [])
        except Exception:  # unknown provider: the call itself will say so
            self._missing_keys = []
        if self.api_base is not None and self._missing_keys:
            self._api_key = PLACEHOLDER_KEY
        self._litellm = litellm

    def _check_keys(self) -> None:
        """Raise AgentFatal before any request when a provider that authenticates by an
        ``*_API_KEY`` variable has none set and no api_base is given (the openai SDK
        would report it as a 500 and be retried)."""
        if self.api_base is None and self._missing_keys and all(k.endswith("_API_KEY") for k in self._missing_keys):
            self.totals.failed_calls += 1
            raise AgentFatal(
                f"{self.model}: {' or '.join(self._missing_keys)} is not set in the environment; export it "
                "(or give an api_base for a local OpenAI-compatible server), then resume"
            )

    def _count(self, messages: list[dict]) -> int:
        """Tokens of ``messages`` by the model's tokenizer (litellm), else characters / 4."""
        try:
            return int(self._litellm.token_counter(model=self.model, messages=messages))
        except Exception:  # litellm's tokenizer lookup failed: estimate
            return sum(len(str(m.get("content") or "")) for m in messages) // 4 + 4 * len(messages)

    def _messages(self, context: ProposalContext) -> list[dict]:
        try:
            if self._prompt_cap is not None:
                return build_messages(context, max_input_tokens=self._prompt_cap, count_tokens=self._count,
                                      reserve_tokens=0)
            return build_messages(context, max_input_tokens=self.max_input_tokens, count_tokens=self._count)
        except ValueError as exc:
            raise AgentFatal(f"{self.model}: {exc}") from exc

    def _shrink(self, context: ProposalContext, messages: list[dict]) -> list[dict]:
        """After a context-window error: cap the prompt at REASK_SHRINK of its tokens and rebuild."""
        self._prompt_cap = max(1, int(self._count(messages) * REASK_SHRINK))
        return self._messages(context)

    # -- the request --------------------------------------------------------

    async def _request(self, messages: list[dict]) -> tuple[str, Any]:
        """One attempt: (reply text, litellm ModelResponse). litellm's exceptions propagate."""
        litellm = self._litellm
        kwargs: dict[str, Any] = dict(model=self.model, messages=messages, timeout=self.timeout_s,
                                      num_retries=0, max_retries=0, drop_params=True)
        if self.api_base is not None:
            kwargs["api_base"] = self.api_base
        if self._api_key is not None:
            kwargs["api_key"] = self._api_key
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.max_output_tokens is not None:
            kwargs["max_tokens"] = self.max_output_tokens
        if not self.stream:
            response = await litellm.acompletion(**kwargs)
            return assistant_text(response), response
        stream = await litellm.acompletion(**kwargs, stream=True, stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
        response = litellm.stream_chunk_builder(chunks, messages=messages) if chunks else None
        return assistant_text(response), response

    def _give_up_if_needed(self, exc: Exception, rule: ErrorRule, retries: int) -> None:
        """Raise AgentFatal for a fatal error or when no retry is left."""
        if rule.action != FATAL and retries < self.max_retries:
            return
        self.totals.failed_calls += 1
        self.totals.retries += retries
        where = f"provider {getattr(exc, 'llm_provider', None) or provider_of(self.model)}"
        if self.api_base:
            where += f" at {self.api_base}"
        hint = rule.hint
        if rule.action == FATAL and self._missing_keys and not self.api_base:
            hint = f"{', '.join(self._missing_keys)} not set in the environment; " + hint
        if rule.action == FATAL:
            raise AgentFatal(f"{self.model}: {describe(exc)} [{where}]; {hint}, then resume") from exc
        attempts = f"{retries + 1} attempt{'s' if retries else ''}"
        raise AgentFatal(
            f"{self.model}: gave up after {attempts}; last error {describe(exc)} [{where}]; {hint}, then resume"
        ) from exc

    def _backoff(self, retry: int, exc: Exception) -> float:
        """Seconds to sleep before retry number ``retry`` (1-based)."""
        pause = min(MAX_BACKOFF_S, self.backoff_s * 2 ** (retry - 1)) * random.uniform(0.5, 1.0)
        after = retry_after_s(exc)
        return max(pause, min(after, MAX_BACKOFF_S)) if after is not None else pause

    # -- accounting ---------------------------------------------------------

    def _usage(self, response: Any, messages: list[dict], text: str, latency: float,
               retries: int, wait_s: float) -> CallUsage:
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        estimated = prompt == 0
        if estimated:
            prompt = self._count(messages)
            completion = self._count([{"role": "assistant", "content": text}]) if text else 0
        return CallUsage(prompt, completion, self._cost(response), round(latency, 4), retries,
                         round(wait_s, 4), estimated)

    def _cost(self, response: Any) -> Optional[float]:
        """litellm's price of ``response`` in US dollars; None when it does not know the model."""
        if response is None:
            return None
        try:
            return float(self._litellm.completion_cost(completion_response=response, model=self.model))
        except Exception:  # litellm raises for models missing from its cost map
            return None
