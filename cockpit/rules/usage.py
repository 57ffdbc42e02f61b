"""Agent accounting: tokens, cost, latency and retries of the model calls.

An agent that calls a model exposes ``last_usage`` for its latest call (a dict
or a dataclass-like object; see ``cockpit.agents.base.Agent``); the offline
agent has none. Usage is a plain dict so it goes into records.jsonl as is::

    {"prompt_tokens": 1834, "completion_tokens": 212, "cost_usd": 0.0021,
     "latency_s": 3.4, "retries": 0, "calls": 1}

``cost_usd`` is None when the model's price is unknown; a sum counts the known
costs and stays None only when no call had one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

COUNTS = ("prompt_tokens", "completion_tokens", "retries", "calls")


def read_usage(agent: Any) -> Optional[dict]:
    """The agent's ``last_usage`` as a usage dict with ``calls`` = 1, or None when
    it has none. Missing or None numbers count 0 (``cost_usd`` stays None)."""
    raw = getattr(agent, "last_usage", None)
    if raw is None:
        return None

    def get(key: str):
        return raw.get(key) if isinstance(raw, Mapping) else getattr(raw, key, None)

    cost = get("cost_usd")
    return {"prompt_tokens": int(get("prompt_tokens") or 0),
            "completion_tokens": int(get("completion_tokens") or 0),
            "cost_usd": None if cost is None else float(cost),
            "latency_s": float(get("latency_s") or 0.0),
            "retries": int(get("retries") or 0), "calls": 1}


def add_usage(total: Optional[dict], usage: Optional[dict]) -> Optional[dict]:
    """The sum of two usage dicts (either may be None; None + None is None)."""
    if usage is None:
        return None if total is None else dict(total)
    if total is None:
        return dict(usage)
    summed = {key: total.get(key, 0) + usage.get(key, 0) for key in COUNTS}
    summed["latency_s"] = total.get("latency_s", 0.0) + usage.get("latency_s", 0.0)
    costs = [c for c in (total.get("cost_usd"), usage.get("cost_usd")) if c is not None]
    summed["cost_usd"] = sum(costs) if costs else None
    return summed


def format_usage(usage: Optional[dict]) -> str:
    """One short phrase, e.g. ``1,834+212 tok, $0.0021`` ("" for None); the cost
    reads ``$?`` when unknown."""
    if not usage:
        return ""
    cost = usage.get("cost_usd")
    money = "$?" if cost is None else f"${cost:.4f}"
    return f"{usage.get('prompt_tokens', 0):,}+{usage.get('completion_tokens', 0):,} tok, {money}"
