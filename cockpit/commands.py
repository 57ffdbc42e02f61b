"""Typed commands the engine accepts: what a person (or a script) asks of a session.

Commands are frozen dataclasses named as imperatives; the app sends them, the daemon
receives them over its socket (cockpit.serve.wire), the engine applies them
(cockpit.engine.inbox, cockpit.engine.actions). Events, what the engine reports,
are cockpit.events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union


@dataclass(frozen=True)
class Pause:
    """Finish the running experiment, then wait before proposing the next one."""


@dataclass(frozen=True)
class Resume:
    """Leave the paused state and continue the loop."""


@dataclass(frozen=True)
class Stop:
    """End the session now: kill the running training (its row is logged as crash)."""


@dataclass(frozen=True)
class Steer:
    """A note from the human that goes to the agent with every following proposal."""

    text: str


@dataclass(frozen=True)
class Veto:
    """Reject the proposal waiting at the approval gate (reset away, recorded as
    "vetoed", no results row: it never started), or kill the running experiment
    (not the baseline): it ends as a discard row marked " [vetoed]". Else a warning.
    In a fleet session (``--gpus N`` > 1) ``experiment`` names the run in flight to end
    (the cockpit's selected worker's); the serial engine acts on its one run and ignores it."""

    experiment: Optional[int] = None


@dataclass(frozen=True)
class ForceKeep:
    """Keep the running experiment when it ends with a finite val_bpb (" [forced]"),
    or, between experiments, the just-discarded one (the branch moves to it; a new
    keep row "... [forced keep of #n]"); either becomes the ratchet's reference.
    In a fleet session ``experiment`` names the run in flight to keep: kept when it ends
    with a val_bpb if its parent is still the incumbent, else re-applied onto the
    incumbent (cockpit.rules.fleet_rule); the serial engine ignores it."""

    experiment: Optional[int] = None


@dataclass(frozen=True)
class Approve:
    """Let the pending proposal train (only meaningful while the approval gate holds it)."""


@dataclass(frozen=True)
class SetApprovalGate:
    """Turn the approval gate on or off: when on, every committed proposal waits
    (phase "awaiting-approval") for Approve or Veto; off while one waits approves it."""

    on: bool


@dataclass(frozen=True)
class DropQueued:
    """Drop the proposal that waits, pipelined, for approval while a run trains
    (ProposalQueued with ``awaiting_approval``): it is recorded as vetoed and the
    agent is asked for another at once. Else a warning."""


@dataclass(frozen=True)
class RevertLastKeep:
    """Un-keep the last kept commit (never the baseline): the branch and the best
    val_bpb go back to the keep before it; a discard row "... [reverted]" is
    appended. Between experiments only (refused with a warning while training)."""


@dataclass(frozen=True)
class AcceptProgram:
    """The human confirms the program file as it is now (its bytes hash to
    ``sha256``, hex): a change held because it was made while a run trained
    (cockpit.engine.program_hold) is used from the next proposal on. The cockpit's
    editor sends it with every save. Else nothing happens."""

    sha256: str


@dataclass(frozen=True)
class SwitchAgent:
    """Propose with the session's agent called ``name`` (``--agent`` names: offline,
    optuna, litellm; AgentChanged lists them) from the next proposal on; a proposal
    already asked keeps the agent that wrote it. An unknown name gets a warning."""

    name: str


Command = Union[Pause, Resume, Stop, Steer, Veto, ForceKeep, Approve, SetApprovalGate, RevertLastKeep, DropQueued,
                AcceptProgram, SwitchAgent]
