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
    sampler = options.pop("sampler", None)  # the optuna agents' alone
    share = options.pop("llm_share", None)  # the mixed agent's alone
    if settings.name.startswith("optuna"):
        where = workspace.path if workspace is not None else Path(".")
        study = dict(storage=storage_path(where, tag), study_name=tag, sampler=sampler)
        options = {**options, **study, "llm_share": share} if settings.name == "optuna+litellm" else study
    return make_agent(settings.name, seed=seed, **options)


SWITCHABLE = ("offline", "optuna", "litellm", "optuna+litellm")  # the agents to switch between, in n's order


def build_desk(settings: AgentSettings, seed: int, workspace: Optional[Workspace] = None,
               tag: str = "cockpit") -> AgentDesk:
    """The session's agents (cockpit.engine.agent_desk): the chosen one,
    ``settings.name``, and those a person can switch to that need nothing more:
    the offline and the optuna agent always, the litellm and the optuna+litellm
    agent when a model is configured (the optuna ones keep one study, the session
    tag's). Raises what ``build_agent`` raises for the chosen one."""
    agents = {settings.name: build_agent(settings, seed, workspace, tag)}
    for name in SWITCHABLE:
        if name not in agents and ("litellm" not in name or settings.model):
            agents[name] = build_agent(replace(settings, name=name), seed, workspace, tag)
    mixed = agents.get("optuna+litellm")
    if mixed is not None:  # one sampler object for the study both propose from
        if settings.name == "optuna+litellm":
            agents["optuna"] = mixed.sampler
        else:
            mixed.sampler = agents["optuna"]
    ordered = {name: agents[name] for name in SWITCHABLE if name in agents}
    return AgentDesk(ordered or agents, settings.name)
