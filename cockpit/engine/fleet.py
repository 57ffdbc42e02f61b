"""The fleet: one session, N experiments in flight, one per GPU (``--gpus N`` > 1, on Ray).

``FleetEngine(workspace, config, agent, emit, slots)`` runs one session like
cockpit.engine.ratchet's Engine, over ``slots`` (cockpit.engine.fleet_slots: one per
GPU). The head owns every ledger (results.tsv, records.jsonl, the journal, git);
the workers only train. It starts as the serial engine does (SessionStart), then:

* the baseline runs on every GPU at once: the first slot's run is row 0, all N
  values are the noise floor (records ``kind`` "noise-floor", with each worker's);
* each slot loops: take a proposal (a re-applied winner first, else the agent's,
  asked while the slot's previous run trained, so no GPU waits for the model),
  commit it on the incumbent of that moment (GitRepo.commit_on: HEAD untouched),
  train it on the slot, decide (cockpit.rules.fleet_rule): kept iff its parent is
  still the incumbent and it beats it; a run that beat its own parent after the
  incumbent moved is a discard ``[stale]`` and its change goes onto the new
  incumbent as a new experiment ``[rebased]``;
* a proposal whose train.py is in flight or was tried (cockpit.rules.dedupe) is
  refused before it costs a GPU and the agent asked again (told what is in flight);
* a worker or node lost mid-run is one crash row ``[worker lost]``; the slot is dropped.

Each slot's phase goes out as WorkerUpdated (cockpit.engine.fleet_board: the cockpit's
workers strip), each run as RunStarted / StepLogged / RunFinished, each row with its
``worker`` and a TimeAccounted of the fleet (experiments per hour against N x 3600 /
budget, the idle share). Commands: Stop (every run killed, each gets its row), Pause,
Resume, Steer, and Veto / ForceKeep of the run a command names (cockpit.engine.fleet_hands);
the others are refused in one line (a fleet session does not take them yet).
"""

from __future__ import annotations

import asyncio
import time
from typing import Optional

from cockpit.agents.base import Agent
from cockpit.clock import now_iso
from cockpit.commands import Command, ForceKeep, Pause, Resume, Steer, Stop, Veto
from cockpit.engine.agent_desk import AgentDesk
from cockpit.engine.bookkeeping import PRESERVED, Bookkeeper
from cockpit.engine.control import SessionControl, Stopped
from cockpit.engine.fleet_asking import FleetAsker, Job
from cockpit.engine.fleet_board import FleetBoard
from cockpit.engine.fleet_hands import FleetHands
from cockpit.engine.fleet_slots import FleetSlot
from cockpit.engine.proposing import Proposer
from cockpit.engine.outcome import session_reason
from cockpit.engine.session import SessionConfig, SessionError, Trial
from cockpit.engine.startup import SessionStart
from cockpit.engine.trainer import Trainer
from cockpit.events import EngineMessage, Emit, Event, RunFinished, RunStarted, SessionEnded, TimeAccounted
from cockpit.row import Row
from cockpit.rules.fleet_rule import WORKER_LOST, fleet_verdict, steered_verdict
from cockpit.rules.noise import NoiseFloor
from cockpit.rules.redact import redact_event
from cockpit.rules.summary import parse_summary, summary_memory_gb, summary_val_bpb
from cockpit.store.repo import GitRepo, short
from cockpit.store.workspace import Workspace
from cockpit.training.run_result import RunnerError, RunResult, WorkerLost


class FleetEngine:
    """One fleet session (module docstring). ``run()`` once; ``send()`` from the same loop.
    ``figures()`` gives the session's throughput facts (bench/scaling.py)."""

    def __init__(self, workspace: Workspace, config: SessionConfig, agent: "Agent | AgentDesk", emit: Emit,
                 slots: list[FleetSlot]) -> None:
        if len(slots) < 1:
            raise ValueError("a fleet needs at least one slot")
        self.ws, self.config, self._emit, self.slots = workspace, config, emit, list(slots)
        self.desk = AgentDesk.of(agent)
        self.repo = GitRepo(workspace.path)
        self.control = SessionControl(self.emit)
        self.book = Bookkeeper(workspace, config, self.desk.current.name, self.repo, self.emit)
        self.proposer = Proposer(workspace, config, self.repo, self.book, self.control, self.desk, self.emit)
        self.start_up = SessionStart(workspace, self.repo, config, self.book, self.control, self.emit, self.desk)
        self.trainer = Trainer(workspace, config, self.book, self.control, self.emit, self.start_up.train_env)
        self.asker = FleetAsker(config, self.book, self.repo, self.proposer, self.control, self.desk, self.emit)
        self.tried = self.asker.tried
        # experiment training now (or -1 - slot for a baseline re-run) -> (its RemoteRun, its trial, its slot)
        self.runs: dict[int, tuple[object, Trial, FleetSlot]] = {}
        self.vals: dict[str, Optional[float]] = {}  # commit (full) -> its val_bpb, for stale runs' parents
        self.board = FleetBoard(self.slots, self.emit)
        self.hands = FleetHands(self.book, self.emit)
        self._rows_before = 0  # rows when the baselines ended (the rate counts from there)

    @property
    def flying(self) -> dict[int, str]:
        """The experiments training now (baseline re-runs aside): number -> description."""
        return {n: self.asker.pending.get(n, "baseline") for n in sorted(self.runs) if n >= 0}

    # ------------------------------------------------------------ commands --

    def send(self, command: Command) -> None:
        """Apply ``command`` now: Stop kills every run in flight; Pause, Resume, Steer as
        the serial engine; Veto and ForceKeep on the run they name (FleetHands); anything
        else is refused with one warning."""
        if isinstance(command, (Veto, ForceKeep)):
            self.hands.apply(command, {n: flying for n, flying in self.runs.items() if n >= 0})
        elif isinstance(command, (Stop, Pause, Resume, Steer)):
            self.control.apply(command)
            if isinstance(command, Stop):
                for run, _, _ in list(self.runs.values()):
                    run.kill()
        else:
            self.emit(EngineMessage(f"{type(command).__name__}: not in a fleet session yet", "warning"))

    command_now = send  # the signal handlers' path (cockpit.cli.session): commands apply at once here

    def emit(self, event: Event) -> None:
        self._emit(redact_event(event))

    # ------------------------------------------------------------- session --

    async def run(self) -> str:
        """Run the session to its end; returns the SessionEnded reason."""
        reason = "error: unexpected"
        try:
            reason = await session_reason(self._session(), self.emit)
        finally:
            for run, _, _ in list(self.runs.values()):
                run.kill()
            if self.board.started is not None:  # records.jsonl kind "fleet": the session's throughput facts
                self.book.append_record({"kind": "fleet", "tag": self.config.tag, "reason": reason, **self.figures(),
                                         "workers": [dict(worker=s.worker, node=s.node, host=s.host, gpu=s.gpu)
                                                     for s in self.slots]})
            self.start_up.finish(reason)
        self.emit(SessionEnded(reason, self.book.state.rows, self.book.state.usage))
        return reason

    async def _session(self) -> str:
        await self.start_up.start(False)
        # each slot's first proposal is asked while the baselines train (on the base: their parent)
        first = [asyncio.ensure_future(self.asker.ask(slot.worker)) for slot in self.slots]
        try:
            await self._baselines()
        except BaseException:
            for task in first:
                task.cancel()
            raise
        self.board.begin()  # the idle share counts from here
        self._rows_before = self.book.state.rows
        await asyncio.gather(*(self._slot_loop(slot, ahead) for slot, ahead in zip(self.slots, first)))
        if self.control.stopped:
            raise Stopped
        return "agent-exhausted" if self.asker.exhausted else "max-experiments"

    def figures(self) -> dict:
        """{"rows", "duplicates_refused", "idle_share": [per slot, 0..1], "elapsed_s"} since
        the baselines ended (idle = the slot ran no train.py; FleetBoard.figures)."""
        return self.board.figures(self.book.state.rows, self.asker.duplicates_refused)

    # ------------------------------------------------------------ baseline --

    async def _baselines(self) -> None:
        """The baseline on every slot at once: row 0 from the first, the noise floor from all."""
        base, source = self.book.state.last_kept, self.ws.train_py.read_text(encoding="utf-8")
        trial = Trial(0, base, "baseline", "", now_iso())
        self.book.opened(trial)
        self.tried.started(source, 0)
        for slot in self.slots:
            self.board.show(slot, "baseline", 0, "baseline", self.book.budget_s)
        done = await asyncio.gather(*(self._train(slot, trial, source, aux=slot.index > 0) for slot in self.slots))
        self.tried.ended(source, 0)
        result, summary, lost = done[0]
        self._conclude(self.slots[0], trial, Job(0, source, "baseline", None, base, source), result, summary, lost)
        if self.book.state.best is None:
            raise SessionError(f"the baseline run crashed (exit {result.returncode}): {result.failure()}")
        vals = [summary_val_bpb(s) for r, s, _ in done if r.returncode == 0]
        floor = NoiseFloor(tuple(v for v in vals if v is not None))
        if len(floor.runs) >= 2 and self.config.settings.noise_runs > 0:
            self.book.record_noise(floor, workers=[s.worker for s in self.slots])
            self.emit(EngineMessage(f"noise floor from the baseline on {len(floor.runs)} GPUs: "
                                    f"sigma {floor.sigma:.6f}"))

    # --------------------------------------------------------------- slots --

    async def _slot_loop(self, slot: FleetSlot, ahead: Optional[asyncio.Task] = None) -> None:
        """Take, commit, train, decide on ``slot`` until the session is full, exhausted or
        stopped; ``ahead`` is the ask already under way for it."""
        lost = False
        try:
            while not self.control.stopped:
                if self.control.paused:
                    self.board.show(slot, "paused")
                await self.control.wait_if_paused(self.book.state.rows)
                job = self.asker.onto_incumbent(self.asker.rebase_queue.popleft()) if self.asker.rebase_queue else None
                if job is None:
                    self.board.show(slot, "asking")
                    job = self.asker.onto_incumbent(await (ahead or self.asker.ask(slot.worker)))
                    ahead = None
                if job is None:
                    if self.asker.exhausted or self.asker.full():
                        return
                    continue
                trial = self._commit(job)
                self.board.show(slot, "training", trial.n, trial.description, self.book.budget_s)
                if ahead is None:  # the next proposal, asked while this trains (one in hand after a rebased run)
                    ahead = asyncio.ensure_future(self.asker.ask(slot.worker))
                if self._conclude(slot, trial, job, *await self._train(slot, trial, job.source)) == "lost":
                    lost = True
                    return  # the slot's worker is gone: the session goes on with the others
        except Stopped:
            return
        finally:
            self.board.show(slot, "lost" if lost else "done")
            if ahead is not None and ahead.done() and not ahead.cancelled() and ahead.exception() is None:
                self.asker.set_aside(ahead.result(), "the session ended before it ran")
            elif ahead is not None:
                ahead.cancel()

    def _commit(self, job: Job) -> Trial:
        """Commit ``job`` on its parent (HEAD untouched) and journal it."""
        commit = self.repo.commit_on(job.parent, "train.py", job.source.encode("utf-8"), job.description)
        trial = Trial(job.n, commit, job.description, self.repo.diff(job.parent, commit), now_iso(), job.asked)
        self.book.opened(trial, job.parent)
        return trial

    async def _train(self, slot: FleetSlot, trial: Trial, source: str,
                     aux: bool = False) -> tuple[RunResult, dict, bool]:
        """Train ``source`` (``trial``'s train.py) on ``slot``; a lost worker or a run that
        cannot start is a crash result saying so. Returns (result, parsed summary, whether
        the slot's worker was lost)."""
        n = trial.n
        key = f"{self.config.tag}-{n:04d}-{short(trial.commit)}" + (f"-{slot.worker}" if aux else "")
        log_name = f"logs/{key}.log" if aux else self.book.log_name(n, trial.commit)
        files = {name: (self.ws.path / name).read_bytes()  # the harness and the profile it reads
                 for name in ("prepare.py", "cockpit.toml") if (self.ws.path / name).exists()}
        files["train.py"] = source.encode("utf-8")
        run = slot.launch(key, files, self.config.run_command, self.ws.path / log_name, env=self.start_up.train_env(),
                          hard_limit_s=self.trainer.hard_limit_s(), kill_grace_s=self.config.kill_grace_s,
                          experiment=n, emit=None if aux else self.emit, prepare=self.config.prepare_command,
                          limit_clock=self.book.facts.clock)
        runs_key = n if not aux else -1 - slot.index
        self.runs[runs_key] = (run, trial, slot)
        if not aux:
            self.book.state.log_names[n] = log_name
            self.emit(RunStarted(n, short(trial.commit), trial.description, self.book.budget_s,
                                 str(self.ws.path / log_name)))
        began, lost = time.monotonic(), False
        self.board.running(slot)
        try:
            result = await run.wait()
        except RunnerError as exc:  # a run that cannot start there, or WorkerLost
            lost = isinstance(exc, WorkerLost)
            result = RunResult(-1, False, False, str(exc), began, time.monotonic(), None, None)
        finally:
            self.board.ran(slot)
            self.runs.pop(runs_key, None)
        summary = parse_summary(result.text)
        if not aux:
            self.emit(RunFinished(n, short(trial.commit), result.returncode, result.timed_out, summary,
                                  time.monotonic() - began))
        return result, summary, lost

    def _conclude(self, slot: FleetSlot, trial: Trial, job: Job, result: RunResult, summary: dict,
                  lost: bool = False) -> str:
        """Decide, move the branch on a keep, queue a winner of a moved incumbent again,
        append the row and the record. Returns the status, or "lost" when ``lost`` (the
        slot's worker went away)."""
        state = self.book.state
        failed = lost or result.stopped or result.timed_out or result.returncode != 0
        val = None if failed else summary_val_bpb(summary)
        incumbent = state.last_kept
        verdict = fleet_verdict(val, job.parent, self.vals.get(job.parent), incumbent, state.best, self.book.rule)
        verdict = steered_verdict(verdict, self.hands.decision(trial.n), val, job.parent, incumbent)
        self.board.measured(slot, val)
        if verdict.status == "keep" and trial.n > 0:
            self.repo.reset_hard(trial.commit, preserve=PRESERVED)  # a fast-forward: its parent is the incumbent
        self.vals[trial.commit] = val
        if trial.n > 0:
            self.tried.ended(job.source, trial.n)
            self.asker.pending.pop(trial.n, None)
        mark = WORKER_LOST if lost else verdict.mark
        mem = summary_memory_gb(summary) if val is not None else 0.0
        usage = trial.asked.outcome.usage if trial.asked else None
        record = self.book.new_record(
            "experiment", trial.n, verdict.status, trial.description + mark, trial.started, trial.asked,
            commit=short(trial.commit), parent=short(job.parent) if trial.n else "", val_bpb=val, memory_gb=mem,
            diff=trial.diff, summary=summary, timings=result.timings(), returncode=result.returncode,
            timed_out=result.timed_out, stopped=result.stopped, log_path=state.log_names.get(trial.n, ""),
            worker=slot.worker, node=slot.node, gpu=slot.gpu, incumbent_at_decision=short(incumbent),
            errors=list(trial.asked.outcome.errors) if trial.asked else [],
            replies=[r[:20_000] for r in trial.asked.outcome.replies] if trial.asked else [])
        self.book.log_row(Row(trial.commit, val or 0.0, mem, verdict.status, trial.description + mark, trial.n),
                          usage, record, trial)
        self.book.close(trial)
        self.emit(TimeAccounted(trial.n, result.timings(),
                                self.board.session(state.rows - self._rows_before, self.book.budget_s)))
        if verdict.rebase:
            self.asker.queue_rebased(trial, job)
        return "lost" if lost else verdict.status

