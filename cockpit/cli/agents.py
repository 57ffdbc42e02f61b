"""The session's agents, built from the [agent] settings and the typed flags: the chosen
one and those a person can switch to live (cockpit.engine.agent_desk)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

from cockpit.agents import make_agent
from cockpit.agents.sampler import storage_path
from cockpit.engine.agent_desk import AgentDesk
from cockpit.store.settings import AgentSettings
from cockpit.store.workspace import Workspace


def build_agent(settings: AgentSettings, seed: int, workspace: Optional[Workspace] = None, tag: str = "cockpit"):
    """The agent for ``settings`` through ``make_agent``, passing only the options
    that are set (the offline agent takes only ``seed``); the optuna agent's study
    is session ``tag``'s in ``workspace`` (cockpit.agents.sampler ``storage_path``).
    Raises SettingsError (litellm without a model, an unknown sampler) or
    ValueError (unknown agent)."""
    settings.check()
    options = {} if settings.name == "offline" else settings.options()
    sampler = options.pop("sampler", None)  # the optuna agent's alone
    if settings.name == "optuna":
        where = workspace.path if workspace is not None else Path(".")
        options = dict(storage=storage_path(where, tag), study_name=tag, sampler=sampler)
    return make_agent(settings.name, seed=seed, **options)


SWITCHABLE = ("offline", "optuna", "litellm")  # the agents a session can switch between, in the n key's order


def build_desk(settings: AgentSettings, seed: int, workspace: Optional[Workspace] = None,
               tag: str = "cockpit") -> AgentDesk:
    """The session's agents (cockpit.engine.agent_desk): the chosen one,
    ``settings.name``, and those a person can switch to that need nothing more:
    the offline and the optuna agent always, the litellm agent when a model is
    configured. Raises what ``build_agent`` raises for the chosen one."""
    agents = {settings.name: build_agent(settings, seed, workspace, tag)}
    for name in SWITCHABLE:
        if name not in agents and (name != "litellm" or settings.model):
            agents[name] = build_agent(replace(settings, name=name), seed, workspace, tag)
    ordered = {name: agents[name] for name in SWITCHABLE if name in agents}
    return AgentDesk(ordered or agents, settings.name)
