"""No duplicate work: a train.py already in flight or already tried is refused before it
costs a GPU.

Versions are compared by their normal form (cockpit.rules.triviality ``normal_form``:
the AST without docstrings, seed literals masked), so a copy that differs only in
comments, formatting, docstrings or seeds is the same experiment. ``TriedPrograms``
holds this session's: each is in flight (proposed and not yet ended) or tried.
"""

from __future__ import annotations

import hashlib
from typing import Optional

from cockpit.rules.triviality import normal_form


def fingerprint(source: str) -> str:
    """sha256 (hex) of ``source``'s normal form: equal for two versions of train.py
    exactly when they are the same program up to comments, formatting, docstrings and
    seeds."""
    return hashlib.sha256(normal_form(source).encode("utf-8")).hexdigest()


class TriedPrograms:
    """The train.py versions of one session, by fingerprint: which experiment holds
    each and whether it is still in flight."""

    def __init__(self) -> None:
        self._holder: dict[str, tuple[int, bool]] = {}  # fingerprint -> (experiment, in flight)

    def refusal(self, source: str) -> Optional[str]:
        """None when ``source`` is new to this session; else the reason to refuse it,
        naming the experiment that holds it (``the same train.py is in flight as #12``,
        ``... was tried as #9``)."""
        held = self._holder.get(fingerprint(source))
        if held is None:
            return None
        n, flying = held
        return f"the same train.py {'is in flight' if flying else 'was tried'} as #{n}"

    def started(self, source: str, experiment: int) -> None:
        """``source`` is now in flight as ``experiment``."""
        self._holder[fingerprint(source)] = (experiment, True)

    def ended(self, source: str, experiment: int) -> None:
        """``experiment``'s run of ``source`` ended (it stays tried)."""
        self._holder[fingerprint(source)] = (experiment, False)

    def released(self, source: str) -> None:
        """``source`` never trained (set aside, or replaced by its re-applied version): new again."""
        self._holder.pop(fingerprint(source), None)

    def in_flight(self) -> list[int]:
        """The experiments in flight, in number order."""
        return sorted(n for n, flying in self._holder.values() if flying)
