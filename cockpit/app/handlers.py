"""How each engine event changes the widgets (a mixin of ``CockpitApp``).

``EventHandlers.handlers()`` maps each event type to its handler; the app's
one ``EngineEvent`` handler looks the event up there. ``ActionApplied`` (the
engine's account of a control it applied) is handled when ``cockpit.events``
defines it, so the app runs with an engine that has it and one that does not.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from cockpit import events
from cockpit.app.widgets import TableRow
from cockpit.row import Row
from cockpit.app.widgets.status_bar import cost_of
from cockpit.rules.standing import running_best
from cockpit.events import (
    AgentChanged,
    EngineMessage,
    LogLine,
    NoiseMeasured,
    PhaseChanged,
    ProposalQueued,
    ProposalReady,
    ProposalRejected,
    RowLogged,
    RunFinished,
    RunStarted,
    SessionEnded,
    SessionStarted,
    TimeAccounted,
    WorkerUpdated,
)

LEVEL_STYLES = {"info": "", "warning": "yellow", "error": "bold red"}
# The "awaits approval" notice comes this long after the phase, and only if it still waits:
# a cockpit attaching late replays every past wait in one burst, and none of those waits now.
AWAITING_NOTICE_DELAY_S = 0.5
ActionApplied = getattr(events, "ActionApplied", None)


# Actions the agent pane shows from ActionApplied; pause, resume, stop and steer
# show through the engine's own message, the status bar and the note as sent.
SHOWN_ACTIONS = ("veto", "force-keep", "approve", "drop-queued", "gate-on", "gate-off", "revert")


def describe_action(event: Any) -> str:
    """``action: detail`` of an ActionApplied: the text of the EngineMessage that echoes it."""
    return f"{getattr(event, 'action', 'action')}: {getattr(event, 'detail', '')}"


class EventHandlers:
    """Engine events to widget changes. Attributes are ``CockpitApp``'s."""

    status_bar: Any
    results_table: Any
    train_log: Any
    curves: Any
    staircase: Any
    diff_view: Any
    agent_pane: Any
    run_details: Any
    workers_strip: Any
    notify: Callable[..., None]
    set_timer: Callable[..., Any]
    _phase_event: Any = None  # the latest PhaseChanged
    _pause: str
    _gate: bool
    _agents: tuple[str, tuple[str, ...]]  # (the chosen agent's name, the session's choices)
    _where: tuple[str, str]  # (branch, profile) for the status bar
    _echoes: set[str]
    _set_pause: Callable[[str], None]

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        table: dict[type, Callable[[Any], None]] = {
            SessionStarted: self._show_session_started,
            AgentChanged: self._show_agent,
            PhaseChanged: self._show_phase,
            ProposalReady: self._show_proposal,
            ProposalRejected: self._show_rejection,
            ProposalQueued: self._show_queued,
            TimeAccounted: self._show_time_account,
            NoiseMeasured: self._show_noise,
            RunStarted: self._show_run_started,
            LogLine: self._show_log_line,
            RunFinished: self._show_run_finished,
            RowLogged: self._show_row,
            EngineMessage: self._show_message,
            SessionEnded: self._show_session_ended,
            WorkerUpdated: self._show_worker,
        }
        if ActionApplied is not None:
            table[ActionApplied] = self._show_action
        return table

    def _show_session_started(self, event: SessionStarted) -> None:
        self.curves.budget_s = event.budget_s
        self.status_bar.tag = event.tag
        self._where = (event.branch, event.profile)
        self.status_bar.where = f"{event.branch} · {event.profile} · {event.agent}"
        started_at = getattr(event, "started_at", None)  # set by the daemon: a late attach keeps the rate right
        self.status_bar.session_started(max(0.0, time.time() - started_at) if started_at else 0.0)
        gate = getattr(event, "approval_gate", None)
        if gate is not None:
            self._gate = self.status_bar.gate = bool(gate)
        self.train_log.add_rule(
            f"session {event.tag} · {event.branch} · {event.profile} · "
            f"agent {event.agent} · budget {event.budget_s:.0f}s"
        )

    def _show_agent(self, event: AgentChanged) -> None:
        """The agent of the next proposal, and the ones ``n`` cycles through."""
        self._agents = (event.name, tuple(event.choices))
        branch, profile = self._where
        self.status_bar.where = f"{branch} · {profile} · {event.agent}"

    @property
    def fleet(self) -> bool:
        """Whether the session is a fleet's (``--gpus N`` > 1): a WorkerUpdated came."""
        return bool(self.workers_strip.slots)

    def selected_run(self) -> Optional[int]:
        """The experiment the selected worker trains or decides (None: none, or no fleet)."""
        current = self.workers_strip.current
        return current.experiment if current is not None and current.experiment >= 0 else None

    def _show_worker(self, event: WorkerUpdated) -> None:
        """A fleet slot changed: the strip; the first one adds the table's worker column."""
        if not self.fleet:
            self.results_table.set_fleet()
        self.workers_strip.update_worker(event)
        if event.worker == self.workers_strip.selected:
            self.follow_worker()

    def follow_worker(self) -> None:
        """The status bar, the curves and the log's title follow the selected worker's run
        (while it asks, the curves keep its last run)."""
        current = self.workers_strip.current
        if current is None:
            return
        run = self.selected_run()
        self.status_bar.worker = current.worker
        self.status_bar.experiment = run
        self.status_bar.phase = current.phase
        if run is not None:
            self.curves.follow(run)
            self.train_log.border_title = f"log · {current.worker} · exp {run}"
        self.status_bar.remaining_s = self.workers_strip.left_s.get(run) if current.phase == "training" else None

    def _show_phase(self, event: PhaseChanged) -> None:
        self._phase_event = event
        if not self.fleet:  # a fleet's phases are its workers' (WorkerUpdated)
            self.status_bar.experiment = event.experiment
            self.status_bar.phase = event.phase
        if event.phase == "awaiting-approval":
            self._gate = self.status_bar.gate = True
            self.set_timer(AWAITING_NOTICE_DELAY_S, lambda: self._notify_awaiting(event))
        elif event.phase == "paused":
            self._set_pause("paused")
        elif self._pause in ("paused", "resuming"):
            self._set_pause("running")

    def _notify_awaiting(self, event: PhaseChanged) -> None:
        if self._phase_event is event:  # no phase since: it still waits
            self.notify(f"exp {event.experiment} awaits approval: F8/a approve · F6/v veto", timeout=8)

    def _show_proposal(self, event: ProposalReady) -> None:
        self.train_log.add_line(f"exp {event.experiment} proposal: {event.description}", "cyan")
        self.diff_view.add_proposal(event)
        self.agent_pane.add_proposal(event)

    def _show_queued(self, event: ProposalQueued) -> None:
        """A proposal asked ahead is ready while ``event.running`` trains (at the gate: decide it now)."""
        waits = " · awaits approval: F8/a approve · d drop" if event.awaiting_approval else ""
        self.train_log.add_line(f"exp {event.experiment} queued while exp {event.running} trains: "
                                f"{event.description}{waits}", "cyan")
        self.agent_pane.add_proposal(event)
        if event.awaiting_approval:
            self.diff_view.add_proposal(event)  # to be read before deciding
            self.set_timer(AWAITING_NOTICE_DELAY_S, lambda: self._notify_queued(event))

    def _notify_queued(self, event: ProposalQueued) -> None:
        phase = self._phase_event
        if phase is not None and phase.experiment == event.running and phase.phase == "training":
            # still true (a cockpit attaching late replays old queued proposals in one burst)
            self.notify(f"exp {event.experiment} is queued and awaits approval: F8/a approve · d drop", timeout=8)

    def _show_noise(self, event: NoiseMeasured) -> None:
        self.status_bar.sigma = event.sigma  # the engine's EngineMessage says it in the agent pane

    def _show_time_account(self, event: TimeAccounted) -> None:
        self.status_bar.account(event.session)
        self.run_details.time_accounted(event)

    def _show_rejection(self, event: ProposalRejected) -> None:
        first_line = event.reason.strip().splitlines()[0] if event.reason.strip() else ""
        self.train_log.add_line(
            f"exp {event.experiment} proposal rejected (attempt {event.attempt}): {first_line}", "yellow"
        )
        self.agent_pane.add_rejection(event)

    def _show_run_started(self, event: RunStarted) -> None:
        if not self.fleet or event.experiment == self.selected_run():
            self.status_bar.remaining_s = event.budget_s
            self.train_log.border_title = f"log · exp {event.experiment} · {event.commit}"
        self.train_log.add_rule(f"exp {event.experiment} · {event.commit} · {event.description}")
        self.curves.start_run(event.experiment, event.description, event.budget_s)

    def _show_log_line(self, event: LogLine) -> None:
        self.train_log.add_line(event.text)
        self.run_details.log_line(event)

    def _show_run_finished(self, event: RunFinished) -> None:
        if not self.fleet or event.experiment == self.selected_run():
            self.status_bar.remaining_s = None
        self.run_details.run_finished(event)
        val_bpb = event.summary.get("val_bpb")
        if event.returncode == 0 and val_bpb is not None:
            text, style = f"val_bpb {float(val_bpb):.6f} in {event.wall_s:.0f}s", "bold"
        else:
            why = "timed out" if event.timed_out else f"exit status {event.returncode}"
            text, style = f"crashed ({why}) after {event.wall_s:.0f}s", "bold red"
        self.train_log.add_line(f"exp {event.experiment} finished: {text}", style)

    def _show_row(self, event: RowLogged) -> None:
        row = Row(event.commit, event.val_bpb, event.memory_gb, event.status, event.description, event.experiment)
        self.results_table.add_result(TableRow(row, getattr(event, "delta_sigma", None),
                                               getattr(event, "holdout_bpb", None), getattr(event, "agent", None),
                                               getattr(event, "worker", None)))
        self.show_standing()
        self.status_bar.count_row(event.memory_gb, getattr(event, "agent_usage", None))
        self.curves.row_logged(event.experiment, event.status)
        self.run_details.row_logged(event)

    def show_standing(self) -> None:
        """The running best over the table's rows (cockpit.rules.standing), once, for the
        status bar and the staircase: both show the same incumbent."""
        rows = self.results_table.results
        standings = running_best(rows)
        self.status_bar.show_standing(standings[-1] if standings else None)
        self.staircase.show_rows(rows, standings)

    def _show_message(self, event: EngineMessage) -> None:
        if event.text in self._echoes:  # the agent pane has it as an action already
            self._echoes.discard(event.text)
        else:
            self.agent_pane.add_message(event)
        if event.level == "error":
            self._show_error(event.text)
        else:
            self.train_log.add_line(event.text, LEVEL_STYLES.get(event.level, ""))

    def _show_action(self, event: Any) -> None:
        """An ActionApplied: in the agent pane (the echoing EngineMessage is not); the gate's state."""
        action = getattr(event, "action", "")
        if action in ("gate-on", "gate-off"):
            self._gate = self.status_bar.gate = action == "gate-on"
        elif action == "pause" and self._pause == "running":  # sent from this cockpit or another
            self._set_pause("pausing")
        elif action == "resume" and self._pause in ("pausing", "paused"):
            self._set_pause("running" if self._pause == "pausing" else "resuming")
        if action in SHOWN_ACTIONS:
            text = describe_action(event)
            self._echoes.add(text)
            self.agent_pane.add_action(text)

    def _show_session_ended(self, event: SessionEnded) -> None:
        self.status_bar.phase = "ended"
        self.status_bar.ended = f"{event.reason} · {event.experiments} experiments · q to quit"
        total = cost_of(getattr(event, "agent_usage", None))
        if total is not None:
            self.status_bar.cost_usd = total  # the engine's sum is the authority
        self.train_log.add_rule(f"session ended: {event.reason}")

    def _show_error(self, text: str) -> None:
        self.train_log.add_line(f"error: {text}", LEVEL_STYLES["error"])
        self.notify(text, title="error", severity="error", timeout=15)
