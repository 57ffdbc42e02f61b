"""The honest ratchet of a fleet (``--gpus N``): when may a run that trained beside others be kept?

N runs are in flight at once, each committed on the incumbent of the moment it was
proposed (its ``parent``). A finished run is kept iff its parent is still the
incumbent and it beats it by the session's keep rule (cockpit.rules.noise), so the
branch stays what upstream's is: a line of kept commits, each building on all
before it, every tip a train.py that was trained. A run whose incumbent moved while
it trained is judged against its own parent: if it beat it, its change is worth a
run on the new incumbent (``rebase``: re-applied and queued, its own row a discard
marked ``[stale]``); else it is a plain discard. It is never kept untested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from cockpit.rules.noise import KeepRule

STALE = " [stale]"  # the row of a run that beat its parent after the incumbent moved
REBASED = " [rebased]"  # the description of its change re-applied onto the new incumbent
WORKER_LOST = " [worker lost]"  # the crash row of a run whose worker or node went away


@dataclass(frozen=True)
class FleetVerdict:
    """``status`` keep / discard / crash (results.tsv's), ``mark`` appended to the row's
    description ("" or STALE), ``rebase`` True when the change goes onto the new incumbent."""

    status: str
    mark: str = ""
    rebase: bool = False


def fleet_verdict(val: Optional[float], parent: str, parent_val: Optional[float], incumbent: str,
                  incumbent_val: Optional[float], rule: KeepRule) -> FleetVerdict:
    """The verdict on a finished run of val_bpb ``val`` (None: it crashed or printed no
    finite val_bpb) committed on ``parent`` (full hash; its val_bpb ``parent_val``), while
    the incumbent is ``incumbent`` (its val_bpb ``incumbent_val``; None before the
    baseline's row). ``rule`` is the session's keep rule; a close call is a discard here
    (no confirming re-run in a fleet yet)."""
    if val is None:
        return FleetVerdict("crash")
    if parent == incumbent:
        return FleetVerdict(rule.decide(val, incumbent_val)[0])
    if rule.decide(val, parent_val)[0] == "keep":
        return FleetVerdict("discard", STALE, rebase=True)
    return FleetVerdict("discard")


VETOED = " [vetoed]"  # as the serial engine marks a vetoed run (cockpit.engine.verdict)
FORCED = " [forced]"


def steered_verdict(verdict: FleetVerdict, decision: str, val: Optional[float], parent: str,
                    incumbent: str) -> FleetVerdict:
    """``verdict`` after a person's ``decision`` on the run ("" none, "veto", "force-keep"):
    a vetoed run is a discard ``[vetoed]``; a forced run with a val_bpb is a keep
    ``[forced]`` when its parent is still the incumbent, else (keeping it would drop the
    keeps made meanwhile) a discard ``[stale]`` whose change goes onto the incumbent,
    as a winner's would. A crash stays a crash."""
    if decision == "veto":
        return FleetVerdict("discard", VETOED)
    if decision != "force-keep" or val is None or verdict.status == "keep":
        return verdict
    if parent == incumbent:
        return FleetVerdict("keep", FORCED)
    return FleetVerdict("discard", STALE, rebase=True)
