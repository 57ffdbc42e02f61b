"""Agent accounting (cockpit.rules.usage): reading an agent's last call, summing, formatting."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional

from cockpit.rules.usage import add_usage, format_usage, read_usage


@dataclass
class Usage:
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    cost_usd: Optional[float] = None
    latency_s: Optional[float] = None
    retries: Optional[int] = None


def test_an_agent_without_usage_has_none():
    assert read_usage(SimpleNamespace()) is None
    assert read_usage(SimpleNamespace(last_usage=None)) is None


def test_a_dict_usage_is_read_as_one_call_with_typed_numbers():
    agent = SimpleNamespace(last_usage={"prompt_tokens": "1834", "completion_tokens": 212.0, "cost_usd": "0.0021",
                                        "latency_s": 3, "retries": 2})
    usage = read_usage(agent)
    assert usage == {"prompt_tokens": 1834, "completion_tokens": 212, "cost_usd": 0.0021, "latency_s": 3.0,
                     "retries": 2, "calls": 1}
    assert type(usage["prompt_tokens"]) is int and type(usage["completion_tokens"]) is int
    assert type(usage["latency_s"]) is float and type(usage["cost_usd"]) is float and type(usage["retries"]) is int


def test_an_object_usage_is_read_by_attribute_and_missing_numbers_count_zero():
    usage = read_usage(SimpleNamespace(last_usage=Usage(prompt_tokens=10)))
    assert usage == {"prompt_tokens": 10, "completion_tokens": 0, "cost_usd": None, "latency_s": 0.0,
                     "retries": 0, "calls": 1}
    # a dict with nothing in it, and an object with attributes missing altogether
    assert read_usage(SimpleNamespace(last_usage={}))["completion_tokens"] == 0
    assert read_usage(SimpleNamespace(last_usage=SimpleNamespace(cost_usd=0.5)))["cost_usd"] == 0.5
    assert read_usage(SimpleNamespace(last_usage=Usage(cost_usd=0)))["cost_usd"] == 0.0  # free, not unknown


def one(prompt=100, completion=10, cost=0.01, latency=1.5, retries=0):
    return {"prompt_tokens": prompt, "completion_tokens": completion, "cost_usd": cost, "latency_s": latency,
            "retries": retries, "calls": 1}


def test_sums_add_every_count_latency_and_the_known_costs():
    total = add_usage(one(), one(prompt=50, completion=5, cost=0.02, latency=0.5, retries=1))
    assert total["prompt_tokens"] == 150 and total["completion_tokens"] == 15
    assert total["retries"] == 1 and total["calls"] == 2
    assert total["latency_s"] == 2.0
    assert abs(total["cost_usd"] - 0.03) < 1e-12
    # an unknown cost does not make the known one unknown, nor counts as anything
    assert add_usage(one(cost=None), one(cost=0.02))["cost_usd"] == 0.02
    assert add_usage(one(cost=0.02), one(cost=None))["cost_usd"] == 0.02
    assert add_usage(one(cost=None), one(cost=None))["cost_usd"] is None


def test_sums_with_none_and_with_keys_missing():
    assert add_usage(None, None) is None
    first = one()
    alone = add_usage(None, first)
    assert alone == first and alone is not first  # a copy: the caller's dict is not shared
    kept = add_usage(first, None)
    assert kept == first and kept is not first
    partial = add_usage({"calls": 1}, {"prompt_tokens": 7})
    assert partial["prompt_tokens"] == 7 and partial["calls"] == 1 and partial["latency_s"] == 0.0
    assert partial["completion_tokens"] == 0 and partial["cost_usd"] is None


def test_format_is_tokens_and_cost():
    assert format_usage(one(prompt=1834, completion=212, cost=0.0021)) == "1,834+212 tok, $0.0021"
    assert format_usage(one(prompt=5, completion=1234, cost=None)) == "5+1,234 tok, $?"
    assert format_usage({"cost_usd": 1.0}) == "0+0 tok, $1.0000"
    assert format_usage(None) == "" and format_usage({}) == ""


def test_an_empty_usage_is_one_call_of_nothing():
    assert read_usage(SimpleNamespace(last_usage={})) == {"prompt_tokens": 0, "completion_tokens": 0,
                                                          "cost_usd": None, "latency_s": 0.0, "retries": 0,
                                                          "calls": 1}
