"""The human's controls: every command applied to the session, and recorded.

The engine's command listener hands each command to ``HumanActions.apply``. It
runs only while the engine awaits, so the engine is then "preparing",
"proposing", "awaiting-approval", "training" or "paused" (or not started yet,
or stopped); what a command does depends on that phase:

- Pause / Resume / Stop / Steer: the session state (cockpit.engine.control: a note
  over 2,000 characters is refused, the agent sees the newest 20); each one
  that takes effect is an action record.
- SetApprovalGate(on): when on, each committed proposal waits in
  "awaiting-approval" for Approve (it trains) or Veto; turning the gate off
  while one waits approves it.
- Approve: the waiting proposal trains; while a run trains, a pipelined
  proposal offered at the gate (cockpit.engine.pipeline) is approved ahead: it trains
  right after without waiting. At any other time a warning.
- DropQueued: the pipelined proposal offered at the gate while a run trains is
  recorded as vetoed and the agent is asked for another at once; else a warning.
- Veto: a waiting proposal is reset away and recorded (``kind`` "vetoed", with
  its diff) without a results row: it never started, and a row needs a run. A
  training run (not the baseline) is killed, process group and all, and ends as
  a discard row marked " [vetoed]"; the branch goes back to the last keep. At
  any other time a warning ("nothing to veto").
- ForceKeep: a training run (not the baseline) is kept when it ends with a
  finite val_bpb, marked " [forced]" when it would have been discarded, and is
  the reference from then on even if worse; a crash cannot be kept (warning).
  Between experiments, when the newest row is a discard with a val_bpb, the
  branch moves to that commit (``git reset --hard``), its val_bpb becomes the
  reference and, results.tsv being append-only, a new keep row
  "<description> [forced keep of #n]" is appended. Otherwise a warning.
- RevertLastKeep: between experiments only (refused with a warning while a run
  trains: veto it, or revert after it ends): the branch goes back to the keep
  before the last one, whose val_bpb is the reference again, and a discard row
  "<description> [reverted]" is appended for the un-kept commit. The baseline
  is never reverted; repeated reverts walk back the stack of keeps.

"Between experiments" means proposing, awaiting approval or paused; a proposal
built on the old base is dropped and asked again (a waiting one is recorded as
withdrawn). Each applied action is one records.jsonl object ``{"kind":
"action", "action", "experiment", "commit", "time", "detail", "tag"}``, an
ActionApplied event and an EngineMessage; a refused one only a warning.
"""

from __future__ import annotations

import asyncio
from typing import Optional, Protocol

from cockpit.engine.bookkeeping import Bookkeeper
from cockpit.engine.session import Trial
from cockpit.clock import now_iso
from cockpit.engine.control import Restart, SessionControl, Stopped
from cockpit.commands import (Approve, Command, DropQueued, ForceKeep, Pause, Resume, RevertLastKeep,
                              SetApprovalGate, Steer, Stop, Veto)
from cockpit.events import ActionApplied, EngineMessage, Emit, Event, PhaseChanged
from cockpit.store.repo import short
from cockpit.rules.standing import REVERTED

BETWEEN = ("proposing", "awaiting-approval", "paused")  # phases between two runs


class AskedAhead(Protocol):
    """What the human controls may do to a proposal asked ahead while a run trains
    (cockpit.engine.pipeline.ProposalQueue): each returns what happened, "" when no
    proposal is offered."""

    def approve(self) -> str:
        """Let the offered proposal train without waiting at the gate."""

    def drop(self) -> str:
        """Record the offered proposal as vetoed and ask for another."""


class HumanActions:
    """Applies the human's commands to one session (see the module docstring).
    ``gate`` is the approval gate; ``phase`` the engine's phase (``observe``);
    ``ahead`` the proposal asked ahead, when the engine pipelines."""

    def __init__(self, book: Bookkeeper, control: SessionControl, emit: Emit, gate: bool = False,
                 ahead: Optional[AskedAhead] = None) -> None:
        self.book, self.control, self.emit = book, control, emit
        self.ahead = ahead
        self.gate = gate
        self.phase = ""
        self.trial: Optional[Trial] = None  # the committed experiment waiting or training
        self._verdict = ""  # "veto" or "force-keep" for the training trial
        self._decision = ""  # "approve" or "veto" for the waiting trial
        self._decided = asyncio.Event()

    def observe(self, event: Event) -> None:
        """Follow the engine's phase (called for every event it emits)."""
        if isinstance(event, PhaseChanged):
            self.phase = event.phase

    def apply(self, command: Command) -> None:
        """Apply ``command`` now (the engine is awaiting), record it, or warn why not."""
        if isinstance(command, (Pause, Resume, Stop, Steer)):
            self._session_command(command)
        elif isinstance(command, Veto):
            self._veto()
        elif isinstance(command, ForceKeep):
            self._force_keep()
        elif isinstance(command, Approve):
            self._approve()
        elif isinstance(command, SetApprovalGate):
            self._set_gate(command.on)
        elif isinstance(command, RevertLastKeep):
            self._revert()
        elif isinstance(command, DropQueued):
            self._drop_queued()

    # ------------------------------------------------------------ engine side --

    def begin(self, trial: Trial) -> None:
        """``trial`` is committed: it waits for approval or trains next."""
        self.trial, self._verdict, self._decision = trial, "", ""
        self._decided.clear()

    async def hold_for_approval(self, trial: Trial, approved: bool = False) -> None:
        """With the gate on, wait in "awaiting-approval" until Approve (return) or
        Veto (reset it away, record it "vetoed", raise Restart). Stop or a moved
        branch withdraw it (recorded "withdrawn"; Stopped or Restart). ``approved``:
        it was approved ahead while the run before it trained (no wait)."""
        self.begin(trial)
        if not self.gate or approved:
            return
        parent = self.book.state.last_kept
        self.emit(PhaseChanged(trial.n, "awaiting-approval"))
        self.emit(EngineMessage(f"#{trial.n} waits for approval: approve to train it, veto to drop it"))
        try:
            await self.control.until_stopped(self._decided.wait())
        except Stopped:
            self.book.unrun("withdrawn", trial, parent, "the session stopped before it was approved")
            raise
        except Restart:
            vetoed = self._decision == "veto"
            self.book.unrun("vetoed" if vetoed else "withdrawn", trial, parent,
                            "vetoed at the approval gate" if vetoed else "the branch moved before it was approved")
            raise
        if self._decision == "veto":
            self.book.unrun("vetoed", trial, parent, "vetoed at the approval gate")
            raise Restart

    def abort(self, reason: str) -> bool:
        """Early abort (the engine's own, cockpit.rules.early_abort): kill the training
        run (not the baseline); it ends as a discard " [aborted early]". Not when
        the human already gave a verdict on it. Returns True when it was stopped."""
        trial = self.trial
        if self.phase != "training" or trial is None or trial.n == 0 or self._verdict:
            return False
        self._verdict = "abort"
        self.emit(EngineMessage(f"early abort of #{trial.n} ({trial.description}): {reason}", "warning"))
        self.control.kill_current()
        return True

    def finish_run(self) -> str:
        """The human's verdict on the run that just ended: "veto", "force-keep" or
        "" (always "" after a Stop, which wins). Forgets the trial."""
        verdict = "" if self.control.stopped else self._verdict
        self.trial, self._verdict = None, ""
        return verdict

    # ---------------------------------------------------------------- actions --

    def _session_command(self, command: Command) -> None:
        name = type(command).__name__.lower()
        detail = {"pause": "the loop waits after the running experiment", "resume": "the loop goes on",
                  "stop": "the session ends"}.get(name, getattr(command, "text", "").strip())
        if self.control.apply(command):
            self._record(name, detail, echo=False)

    def _veto(self) -> None:
        trial = self.trial
        if self._waiting():
            self._decide("veto")
            self._record("veto", f"#{trial.n} ({trial.description}) is dropped without training", trial.commit)
        elif self.phase == "training" and trial is not None and trial.n > 0 and self._verdict != "veto":
            self._verdict = "veto"
            self._record("veto", f"killing the run of #{trial.n} ({trial.description}); it ends as a discard row",
                         trial.commit)
            self.control.kill_current()
        elif self.phase == "training" and trial is not None and trial.n == 0:
            self._warn("veto: the baseline is the reference and cannot be vetoed (stop the session instead)")
        else:
            self._warn("veto: nothing to veto (no proposal waits for approval and no experiment is training)")

    def _force_keep(self) -> None:
        trial = self.trial
        if self.phase == "training" and trial is not None:
            if trial.n == 0:
                self._warn("force-keep: the baseline is always kept")
            elif self._verdict == "veto":
                self._warn(f"force-keep: #{trial.n} is being vetoed")
            else:
                self._verdict = "force-keep"
                self._record("force-keep", f"#{trial.n} ({trial.description}) is kept if it ends with a "
                             "finite val_bpb", trial.commit)
        elif self.phase in BETWEEN:
            self._keep_finished()
        else:
            self._warn("force-keep: nothing to keep (no experiment is training or just finished)")

    def _keep_finished(self) -> None:
        """Keep the newest row's commit, a discard with a val_bpb: move the branch
        there, append its keep row, ask again from there."""
        last = self.book.state.last_row
        if last is None or last.status != "discard" or last.score is None:
            what = "no row yet" if last is None else f"#{last.experiment} is a {last.status}" + (
                " without a val_bpb" if last.status == "discard" else "")
            self._warn(f"force-keep: only a just-discarded experiment with a val_bpb can be kept ({what})")
            return
        self.book.move_to(last.commit)
        self._record("force-keep", f"forced keep of #{last.experiment} {short(last.commit)} "
                     f"(val_bpb {last.val_bpb:.6f}): the branch is there and it is the reference", last.commit)
        self.book.relog(last, "keep", f"{last.description} [forced keep of #{last.experiment}]")
        self.control.restart()

    def _revert(self) -> None:
        kept = self.book.state.kept
        if self.phase not in BETWEEN:
            why = (f"#{self.trial.n} is training: veto it, or revert after it ends" if self.phase == "training"
                   and self.trial is not None else "not between experiments")
            self._warn(f"revert: {why}")
            return
        if len(kept) < 2:
            self._warn("revert: nothing to revert (only the baseline is kept, and it stays)")
            return
        target, before = kept[-1], kept[-2]
        self.book.move_to(before.commit)
        self._record("revert", f"un-kept #{target.experiment} {short(target.commit)}; back to "
                     f"#{before.experiment} {short(before.commit)} (val_bpb {before.val_bpb:.6f})", target.commit)
        # the row un-keeps it: the state folds it as every reader of results.tsv does (cockpit.rules.standing)
        self.book.relog(target, "discard", f"{target.description} {REVERTED}")
        self.control.restart()

    def _approve(self) -> None:
        ahead = "" if self._waiting() or self.ahead is None else self.ahead.approve()
        if self._waiting():
            self._decide("approve")
            self._record("approve", f"#{self.trial.n} ({self.trial.description}) trains", self.trial.commit)
        elif ahead:
            self._record("approve", ahead)
        else:
            self._warn("approve: no proposal waits for approval")

    def _drop_queued(self) -> None:
        detail = self.ahead.drop() if self.ahead is not None else ""
        if detail:
            self._record("drop-queued", detail)
        elif self._waiting():
            self._warn("drop: the proposal at the gate is vetoed with veto (F6/v)")
        else:
            self._warn("drop: no queued proposal waits for approval")

    def _set_gate(self, on: bool) -> None:
        if on == self.gate:
            self._warn(f"the approval gate is already {'on' if on else 'off'}")
            return
        self.gate = on
        if on:
            self._record("gate-on", "from the next committed proposal on, each waits for approve or veto")
            return
        detail = "proposals train without waiting"
        if self._waiting():
            self._decide("approve")
            detail += f"; #{self.trial.n} ({self.trial.description}) trains now"
        self._record("gate-off", detail, self.trial.commit if self.trial else "")

    # ---------------------------------------------------------------- helpers --

    def _waiting(self) -> bool:
        """A committed proposal waits for approval and nothing was decided yet."""
        return self.phase == "awaiting-approval" and self.trial is not None and not self._decision

    def _decide(self, decision: str) -> None:
        self._decision = decision
        self._decided.set()

    def _warn(self, text: str) -> None:
        self.emit(EngineMessage(text, "warning"))

    def _record(self, action: str, detail: str, commit: str = "", echo: bool = True) -> None:
        """record_action for the experiment in flight or next; ``commit`` defaults to the
        one in flight, else the last keep."""
        commit = commit or (self.trial.commit if self.trial else self.book.state.last_kept)
        record_action(self.book, self.emit, action, self.book.state.rows, detail, commit, echo)


def record_action(book: Bookkeeper, emit: Emit, action: str, n: int, detail: str, commit: str,
                  echo: bool = True) -> None:
    """A human action that took effect on experiment ``n`` (``commit``, full or short): one
    records.jsonl ``action`` object, an ActionApplied and (``echo``) the EngineMessage
    ``action: detail``. The serial engine's and the fleet's (cockpit.engine.fleet_hands)."""
    commit = short(commit)
    book.append_record({"kind": "action", "action": action, "experiment": n, "commit": commit, "time": now_iso(),
                        "detail": detail, "tag": book.config.tag})
    emit(ActionApplied(action, n, detail, commit))
    if echo:
        emit(EngineMessage(f"{action}: {detail}"))
