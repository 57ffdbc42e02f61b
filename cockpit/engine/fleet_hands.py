"""A person's veto and force-keep of a fleet's runs in flight (``--gpus N`` > 1).

The cockpit sends Veto / ForceKeep with the ``experiment`` of its selected worker's
run. ``FleetHands.apply(command, flying)`` takes it: a veto kills that run (it ends
as a discard row ``[vetoed]``); a force-keep marks it, and its verdict is then
cockpit.rules.fleet_rule's ``steered_verdict`` (kept ``[forced]`` if its parent is
still the incumbent, else re-applied onto it). Each applied action is a records.jsonl
``action`` object, an ActionApplied and its echoing EngineMessage (cockpit.engine.actions'
``record_action``, the serial engine's); a command that names no run in flight, or the
baseline, gets one warning and changes nothing.
"""

from __future__ import annotations

from typing import Any, Mapping

from cockpit.commands import ForceKeep, Veto
from cockpit.engine.actions import record_action
from cockpit.events import EngineMessage, Emit


class FleetHands:
    """The decisions a person made on runs in flight: experiment -> "veto" / "force-keep"."""

    def __init__(self, book: Any, emit: Emit) -> None:
        self.book, self.emit = book, emit
        self.decisions: dict[int, str] = {}

    def apply(self, command: "Veto | ForceKeep", flying: Mapping[int, tuple[Any, Any, Any]]) -> None:
        """Apply ``command`` to the run it names; ``flying`` maps each experiment training
        now to (its run: ``kill()``, its Trial, its FleetSlot)."""
        action = "veto" if isinstance(command, Veto) else "force-keep"
        n = command.experiment
        if n is None and len(flying) == 1:
            n = next(iter(flying))
        if n is None:
            self._warn(f"{action}: {len(flying)} runs are in flight; name one (select its worker in the cockpit: w)")
            return
        if n == 0:
            self._warn(f"{action}: the baseline is the reference; it cannot be vetoed or forced")
            return
        if n not in flying:
            self._warn(f"{action}: #{n} is not training now (it ended, or has not started)")
            return
        run, trial, slot = flying[n]
        if self.decisions.get(n) == "veto":
            self._warn(f"{action}: #{n} is being vetoed already")
            return
        self.decisions[n] = action
        if action == "veto":
            detail = f"killing the run of #{n} ({trial.description}) on {slot.worker}; it ends as a discard row"
        else:
            detail = (f"#{n} ({trial.description}) on {slot.worker} is kept if it ends with a finite val_bpb and "
                      "the incumbent has not moved (else it is re-applied onto it)")
        record_action(self.book, self.emit, action, n, detail, trial.commit)
        if action == "veto":
            run.kill()

    def decision(self, n: int) -> str:
        """The decision on experiment ``n`` ("" none), forgotten once read (its row is next)."""
        return self.decisions.pop(n, "")

    def _warn(self, text: str) -> None:
        self.emit(EngineMessage(text, "warning"))
