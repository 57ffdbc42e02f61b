"""The Textual cockpit: renders engine events, sends commands (see docs/CONTRACTS.md)."""

from cockpit.app.app import CockpitApp, EngineEvent, EngineFactory

__all__ = ["CockpitApp", "EngineEvent", "EngineFactory"]
