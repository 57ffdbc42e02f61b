"""What one LLM call and a session of them cost: tokens as the provider reported them
(or estimated), litellm's price in US dollars, latency and retries
(read by cockpit.rules.usage through the agent's ``last_usage``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional


@dataclass(frozen=True)
class CallUsage:
    """Accounting of one successful ``propose``.

    ``prompt_tokens``/``completion_tokens``: as the provider reported them (our
    estimate when it reported none: ``estimated`` True); ``cost_usd``: litellm's
    price in US dollars, None when litellm does not know the model;
    ``latency_s``: seconds of the successful request (first byte to last chunk);
    ``retries``: failed attempts before it (transient errors and context-window
    re-asks); ``wait_s``: seconds spent on failed attempts and backoff.
    """

    prompt_tokens: int
    completion_tokens: int
    cost_usd: Optional[float]
    latency_s: float
    retries: int
    wait_s: float = 0.0
    estimated: bool = False

    def as_dict(self) -> dict:
        """A JSON-ready dict (for the side record and headless output)."""
        return asdict(self)


@dataclass
class UsageTotals:
    """Running totals over the agent's life. ``calls``: successful proposals;
    ``failed_calls``: proposals that raised AgentFatal; ``cost_usd``: sum of the
    known costs (None while no call had a known cost); ``unpriced_calls``:
    successful calls whose cost litellm did not know; ``latency_s``: sum of the
    successful requests' seconds; ``retries``: all failed attempts."""

    calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Optional[float] = None
    unpriced_calls: int = 0
    latency_s: float = 0.0
    retries: int = 0

    def add(self, usage: CallUsage) -> None:
        self.calls += 1
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.latency_s += usage.latency_s
        self.retries += usage.retries
        if usage.cost_usd is None:
            self.unpriced_calls += 1
        else:
            self.cost_usd = (self.cost_usd or 0.0) + usage.cost_usd

    def as_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)
