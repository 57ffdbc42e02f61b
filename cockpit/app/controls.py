"""The human controls: their keys, their palette entries and the commands they send.

Every control has an F-key and a letter. The F-keys are priority bindings:
they work wherever the focus is, in the program editor and the steer input
too. The letters are ordinary bindings and work only when no text widget has
the focus: Textual drops an ancestor's binding for a key the focused widget
would consume (TextArea and Input take every printable key), so a letter typed
into the editor is text, never an action. While a dialog is open only its own
keys work: ordinary app bindings do not reach through a modal screen, and
``check_action`` turns the F-keys off there.

Each control sends its command with ``engine.send`` and says so in a
notification; what the engine made of it comes back as events. Force-keep
and revert move the branch, so they ask first (y/n).

Leaving and stopping are apart: ``q`` (and ``ctrl+c``, ``ctrl+q``) detach, i.e.
close the cockpit while the engine goes on (``cockpit`` again attaches; see
cockpit/serve/attach.py); ``x`` asks y/n, then sends Stop, which ends the session,
and the cockpit closes once the engine has written the last row. Stop has no
F-key (F1-F12 are taken): from a text field, F1 first, or the palette.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from textual.binding import Binding
from textual.screen import ModalScreen

from cockpit.app.dialogs import ConfirmScreen, SteerScreen
from cockpit.commands import (Approve, DropQueued, Command, ForceKeep, Pause, Resume, RevertLastKeep,
                              SetApprovalGate, Steer, Stop, SwitchAgent, Veto)


@dataclass(frozen=True)
class Control:
    """One control: ``action`` (``action_<action>``), its keys, its footer label and palette entry."""

    action: str
    fkey: str
    letter: str
    label: str
    title: str
    help: str
    footer: bool = True  # shown in the footer (the palette lists every control)


# In footer order: the ones needed most first.
CONTROLS = (
    Control("toggle_pause", "f12", "p", "Pause", "Pause / resume", "Pause after the running experiment, or resume"),
    Control("veto", "f6", "v", "Veto", "Veto", "Reject the pending proposal, or end the running experiment as a discard"),
    Control("approve", "f8", "a", "Approve", "Approve", "Let the proposal the approval gate holds train (also a queued one, ahead)"),
    Control("drop_queued", "", "d", "Drop", "Drop the queued proposal", "Drop the proposal queued at the gate while a run trains; the agent is asked for another", footer=False),
    Control("toggle_gate", "f9", "g", "Gate", "Approval gate on / off", "Hold every proposal until it is approved or vetoed"),
    Control("steer", "f10", "s", "Steer", "Steer the agent", "Send a note the agent sees with every following proposal"),
    Control("force_keep", "f7", "k", "Keep", "Force-keep", "Keep the running or just-finished experiment although it did not improve"),
    Control("revert", "f11", "r", "Revert", "Revert last keep", "Un-keep the last kept commit: the branch goes back to the keep before it"),
    Control("switch_agent", "", "n", "Agent", "Switch the agent", "Propose with the session's next agent (offline, optuna, litellm) from the next proposal on", footer=False),
)
CONTROL_ACTIONS = frozenset(control.action for control in CONTROLS) | {"show_pane", "quit", "detach", "stop_session",
                                                                        "next_worker", "previous_worker"}
STOP_QUESTION = "Stop the session now?"
STOP_DETAIL = ("The running training is killed (its row is logged as a crash, marked stopped) and the session "
               "ends. To leave the session running, press q (detach) instead.")


def control_bindings() -> list[Binding]:
    """For each control its letter (shown in the footer when it works) and its F-key (priority);
    a fleet session's ``w`` / ``W`` (next / previous worker)."""
    bindings = [Binding("w", "next_worker", "Worker"), Binding("W", "previous_worker", "Worker", show=False)]
    for control in CONTROLS:
        bindings.append(Binding(control.letter, control.action, control.label, show=control.footer))
        if control.fkey:
            bindings.append(Binding(control.fkey, control.action, control.label, priority=True))
    return bindings


class ControlActions:
    """The app's control actions (a mixin of ``CockpitApp``)."""

    _engine: Any
    _engine_done: bool
    _stopping: bool
    _pause: str
    _gate: bool
    _agents: tuple[str, tuple[str, ...]]
    panes: tuple[tuple[str, str], ...]
    status_bar: Any
    agent_pane: Any
    workers_strip: Any
    fleet: bool
    follow_worker: Callable[[], None]
    notify: Callable[..., None]
    push_screen: Callable[..., Any]
    exit: Callable[..., None]
    screen: Any

    def check_action(self, action: str, parameters: tuple[object, ...]) -> Optional[bool]:
        """Controls, pane keys and q are off while a dialog (or the command palette) is open;
        the program pane's key is off when there is no program pane."""
        if action in CONTROL_ACTIONS and isinstance(self.screen, ModalScreen):
            return False
        if action in ("next_worker", "previous_worker"):
            return self.fleet  # a fleet session's only (hidden from the footer otherwise)
        return not (action == "show_pane" and parameters and parameters[0] not in dict(self.panes))

    def _send(self, command: Command, note: str) -> bool:
        """Send ``command`` if the session runs, and say so; False when it does not run."""
        if self._engine is None or self._engine_done or self._stopping:
            self.notify("The session is not running.", severity="warning")
            return False
        self._engine.send(command)
        self.notify(note)
        return True

    def action_toggle_pause(self) -> None:
        if self._pause == "running":
            if self._send(Pause(), "Pausing after the running experiment."):
                self._set_pause("pausing")
        elif self._send(Resume(), "Resuming."):
            self._set_pause("running" if self._pause == "pausing" else "resuming")

    def _set_pause(self, state: str) -> None:
        self._pause = state
        self.status_bar.pause = state

    def action_next_worker(self) -> None:
        """w: select the fleet's next worker (its run shows in the curves, the log, the status bar)."""
        self.workers_strip.cycle(1)
        self.follow_worker()

    def action_previous_worker(self) -> None:
        """W: select the fleet's previous worker."""
        self.workers_strip.cycle(-1)
        self.follow_worker()

    def _fleet_target(self, action: str) -> Optional[int]:
        """The run a fleet's veto / force-keep acts on: the selected worker's while it trains
        (else a warning and None)."""
        current = self.workers_strip.current
        if current is None or current.phase != "training" or current.experiment < 1:
            what = f"{current.worker} is {current.phase}" if current is not None else "no worker is selected"
            self.notify(f"{action}: {what}; select a worker that trains (w)", severity="warning")
            return None
        return current.experiment

    def action_veto(self) -> None:
        if self.fleet:
            n = self._fleet_target("veto")
            if n is not None:
                self._send(Veto(n), f"Veto sent: #{n} on {self.workers_strip.selected} ends as a discard.")
            return
        self._send(Veto(), "Veto sent: the pending proposal or the running experiment ends as a discard.")

    def action_approve(self) -> None:
        self._send(Approve(), "Approval sent: the held proposal trains.")

    def action_drop_queued(self) -> None:
        self._send(DropQueued(), "Drop sent: the queued proposal is dropped and the agent asked for another.")

    def action_toggle_gate(self) -> None:
        gate = not self._gate
        if self._send(SetApprovalGate(gate), f"Approval gate {'on: proposals wait for F8/a' if gate else 'off'}."):
            self._gate = self.status_bar.gate = gate

    def action_switch_agent(self) -> None:
        """n: the next of the session's agents (AgentChanged's choices) proposes from the next proposal on."""
        chosen, choices = self._agents
        if len(choices) < 2:
            self.notify("This session has one agent only.", severity="warning")
            return
        following = choices[(choices.index(chosen) + 1) % len(choices)] if chosen in choices else choices[0]
        self._send(SwitchAgent(following), f"Switching to the {following} agent from the next proposal on.")

    def action_steer(self) -> None:
        self.push_screen(SteerScreen(), self._steer)

    def _steer(self, text: Optional[str]) -> None:
        if text and self._send(Steer(text), "Note sent to the agent."):
            self.agent_pane.add_steer(text)

    def action_force_keep(self) -> None:
        if self.fleet:
            n = self._fleet_target("force-keep")
            if n is not None:
                question = f"Force-keep #{n} on {self.workers_strip.selected}?"
                detail = ("Kept when it ends with a val_bpb, if the incumbent has not moved meanwhile "
                          "(else its change is re-applied onto the incumbent).")
                self.push_screen(ConfirmScreen(question, detail), self._confirmed(ForceKeep(n), "Force-keep sent."))
            return
        question = "Force-keep the running or just-finished experiment?"
        detail = "It becomes the ratchet's reference although it did not improve (marked forced)."
        self.push_screen(ConfirmScreen(question, detail), self._confirmed(ForceKeep(), "Force-keep sent."))

    def action_revert(self) -> None:
        question = "Revert the last keep?"
        detail = "The branch and the best val_bpb go back to the keep before it."
        self.push_screen(ConfirmScreen(question, detail), self._confirmed(RevertLastKeep(), "Revert sent."))

    def _confirmed(self, command: Command, note: str) -> Callable[[Optional[bool]], None]:
        def answer(yes: Optional[bool]) -> None:
            if yes:
                self._send(command, note)
        return answer

    def action_detach(self) -> None:
        """q: close the cockpit; the engine goes on (in a daemon: ``cockpit`` attaches again)."""
        self.exit()

    def action_quit(self) -> None:
        """ctrl+q and the palette's quit: detach, as q does."""
        self.exit()

    def action_interrupt(self) -> None:
        """ctrl+c: detach, also from a dialog."""
        self.exit()

    def action_stop_session(self) -> None:
        """x: ask, then send Stop; the cockpit closes when the session has ended."""
        if self._stopping:
            self.notify("Still stopping: waiting for the run to end and its row to be written. q detaches.")
        elif self._engine is None or self._engine_done:
            self.notify("The session is not running.", severity="warning")
        else:
            self.push_screen(ConfirmScreen(STOP_QUESTION, STOP_DETAIL), self._stop_confirmed)

    def _stop_confirmed(self, yes: Optional[bool]) -> None:
        if yes and self._send(Stop(), "Stopping: killing the run, writing its row."):
            self._stopping = True
            self.status_bar.stopping = True
