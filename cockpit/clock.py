"""The one clock format of every file cockpit writes."""

from __future__ import annotations

from datetime import datetime, timezone


def now_iso() -> str:
    """The time now, ISO-8601 UTC to the second (e.g. ``2026-11-22T01:27:30+00:00``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
