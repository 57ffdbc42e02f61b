"""The Textual cockpit: renders engine events, sends commands (see docs/CONTRACTS.md)."""

from cockpit.app.app import CockpitApp, EngineFactory
from cockpit.app.messages import EngineEvent, StepsLogged

__all__ = ["CockpitApp", "EngineEvent", "EngineFactory", "StepsLogged"]
