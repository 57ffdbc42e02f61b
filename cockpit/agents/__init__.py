"""Agents that propose edits to train.py (see ``base.Agent``).

``make_agent(name)`` builds one by the name used in cockpit.toml and ``--agent``.
LLM-backed agents import their clients lazily, never at cockpit start-up.
"""

from __future__ import annotations

from cockpit.agents.base import Agent, AgentExhausted, AgentFatal, HistoryRow, ProposalContext

AGENT_NAMES = ("offline",)


def make_agent(name: str, seed: int = 0) -> Agent:
    """The agent called ``name`` (one of AGENT_NAMES). Raises ValueError for others."""
    if name == "offline":
        from cockpit.agents.offline import OfflineAgent

        return OfflineAgent(seed=seed)
    raise ValueError(f"unknown agent {name!r} (known: {', '.join(AGENT_NAMES)})")


__all__ = ["Agent", "AgentExhausted", "AgentFatal", "HistoryRow", "ProposalContext", "make_agent", "AGENT_NAMES"]
