"""The agents a session can switch between, and the one proposing now.

The CLI hands the engine every agent the workspace can run (the offline and the
optuna agent always, the litellm agent when a model is configured), keyed by
their ``--agent`` names, with the one it was started with chosen. A
SwitchAgent command (cockpit.commands: the cockpit's ``n`` key, its palette, the
socket) changes the choice from the next proposal on; a proposal already asked
keeps the agent that wrote it, and every record names the agent of its
proposal. Every agent that observes (``observe``: the optuna agent learns each
outcome) keeps observing while another proposes.
"""

from __future__ import annotations

from typing import Callable, Mapping

from cockpit.agents.base import Agent


class AgentDesk:
    """``agents`` by name (``--agent`` names: "offline", "optuna", "litellm"; insertion
    order is the order ``n`` cycles through) and the ``chosen`` one. Raises
    ValueError when ``chosen`` is not among them or there is none."""

    def __init__(self, agents: Mapping[str, Agent], chosen: str) -> None:
        if chosen not in agents:
            raise ValueError(f"the chosen agent {chosen!r} is not among {', '.join(agents) or 'none'}")
        self.agents, self.chosen = dict(agents), chosen

    @classmethod
    def of(cls, agent: "Agent | AgentDesk") -> "AgentDesk":
        """``agent`` itself when it is a desk, else a desk of that one agent (named by
        its ``name``): an engine made with one agent cannot switch."""
        return agent if isinstance(agent, AgentDesk) else cls({agent.name: agent}, agent.name)

    @property
    def current(self) -> Agent:
        """The agent asked for the next proposal."""
        return self.agents[self.chosen]

    @property
    def names(self) -> tuple[str, ...]:
        """The agents' names, in cycling order."""
        return tuple(self.agents)

    def switch(self, name: str) -> Agent:
        """Choose ``name`` from the next proposal on; returns it. Raises ValueError,
        naming the choices, for a name the session has no agent for."""
        if name not in self.agents:
            raise ValueError(f"no agent {name!r} in this session (it has: {', '.join(self.agents)})")
        self.chosen = name
        return self.current

    def observers(self) -> list[Callable[[object], None]]:
        """The ``observe`` methods of the agents that have one, each agent once."""
        seen, out = set(), []
        for agent in self.agents.values():
            observe = getattr(agent, "observe", None)
            if callable(observe) and id(agent) not in seen:
                seen.add(id(agent))
                out.append(observe)
        return out
