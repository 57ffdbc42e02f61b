"""Re-runs that make no results row: the noise floor and confirming re-runs.

A ``Measurer`` composed into cockpit.engine.ratchet.Engine; each re-run goes through
the session's cockpit.engine.trainer.Trainer, as an experiment does. See
cockpit.rules.noise for the rule. A re-run trains the commit at HEAD again, as the
same command with the same budget; it is journaled (``aux-train`` /
``aux-close``: a dead engine's restart kills it) and recorded as a
records.jsonl ``kind`` "rerun" object, its log next to the experiment's
(``logs/exp-NNNN-<commit>-rerun-K.log``). Its time counts as the GPU's work
(cockpit.rules.timekeeping) but not as an experiment. A Stop during a re-run ends
the session (Stopped) after recording it.
"""

from __future__ import annotations

import uuid
from typing import Awaitable, Callable, Optional

from cockpit.clock import now_iso
from cockpit.engine.bookkeeping import Bookkeeper
from cockpit.engine.control import SessionControl, Stopped
from cockpit.engine.noise_memory import age, device_of, floor_key, remembered
from cockpit.engine.session import SessionConfig, Trial
from cockpit.engine.trainer import Trainer
from cockpit.engine.verdict import attention_warning
from cockpit.events import Emit, EngineMessage, NoiseMeasured, PhaseChanged
from cockpit.rules.holdout import divergence, read_holdout
from cockpit.rules.noise import NoiseFloor, threshold
from cockpit.store.records import read_records
from cockpit.store.repo import short
from cockpit.store.workspace import sha256_file
from cockpit.training.runner import RunResult
from cockpit.rules.summary import attention_backend, summary_val_bpb


class Measurer:
    """The session's re-runs (see module docstring). ``preflight(n)`` is the engine's
    check before a run (cockpit.engine.startup ``SessionStart.preflight``)."""

    def __init__(self, config: SessionConfig, book: Bookkeeper, control: SessionControl, emit: Emit,
                 trainer: Trainer, preflight: Callable[[int], Awaitable[None]]) -> None:
        self.config, self.book, self.control, self.emit = config, book, control, emit
        self.trainer, self.preflight = trainer, preflight
        self._state = book.state

    async def measure_noise(self, baseline_scores: Optional[tuple[float, float]]) -> None:
        """Re-run the baseline ``config.settings.noise_runs`` times; the sample standard
        deviation of its val_bpb values becomes the session's noise floor
        (NoiseMeasured event, ``noise-floor`` record). Re-runs that crash are left
        out (with a warning); fewer than two values leave the floor unmeasured.
        ``baseline_scores``: the baseline's (val_bpb, holdout_bpb) when scored."""
        k, base = self.config.settings.noise_runs, self._state.last_row
        if k <= 0 or base is None or base.score is None or self._remembered():
            return
        runs = [base.score]
        holdouts = [baseline_scores[1]] if baseline_scores else []
        for i in range(1, k + 1):
            val, holdout = await self.rerun(0, self._state.last_kept, f"noise floor: baseline re-run {i}/{k}",
                                             "measuring-noise", i, score_always=True)
            if val is None:
                self.emit(EngineMessage(f"noise floor: baseline re-run {i}/{k} crashed; left out", "warning"))
            else:
                runs.append(val)
                holdouts += [holdout] if holdout is not None and holdouts else []
        if len(runs) < 2:
            self.emit(EngineMessage("noise floor not measured: no baseline re-run finished", "warning"))
            return
        floor = NoiseFloor(tuple(runs), tuple(holdouts) if len(holdouts) == len(runs) else ())
        self.book.record_noise(floor, measured=now_iso(), **self._floor_key())
        bar = threshold(self.config.settings.keep_threshold, floor.sigma)
        self.emit(NoiseMeasured(list(floor.runs), floor.sigma, bar))
        self.emit(EngineMessage(f"noise floor: sigma {floor.sigma:.6f} over {len(runs)} runs of the baseline; "
                                f"a keep needs an improvement over {bar:.6f} (or a confirming re-run)"))

    def _floor_key(self) -> dict:
        """The harness, the baseline train.py and the device of this session's floor."""
        backend = self._state.backends.get(short(self._state.last_kept), "")
        return floor_key(self.book.harness_sha, sha256_file(self.book.ws.train_py), device_of(backend))

    def _remembered(self) -> bool:
        """With ``reuse_noise``: take the newest floor measured under the same key
        (cockpit.engine.noise_memory) as this session's; True when one was taken."""
        if not self.config.reuse_noise:
            return False
        key = self._floor_key()
        found = remembered(read_records(self.book.ws.records_jsonl), key)
        if found is None:
            return False
        floor, record = found
        measured = str(record.get("measured", ""))
        self.book.record_noise(floor, remembered_from=record.get("tag", ""), measured=measured, **key)
        bar = threshold(self.config.settings.keep_threshold, floor.sigma)
        self.emit(NoiseMeasured(list(floor.runs), floor.sigma, bar))
        self.emit(EngineMessage(f"noise floor: sigma {floor.sigma:.6f} over {len(floor.runs)} runs, remembered from "
                                f"session {record.get('tag', '?')} ({age(measured)} old; same harness, train.py and "
                                f"device); --noise-runs N measures again"))
        return True

    async def confirm(self, trial: Trial, result: RunResult, summary: dict, verdict: str) -> tuple:
        """The val_bpb of a confirming re-run when ``trial``'s run improved on the
        best by no more than the noise threshold (cockpit.rules.noise "confirm"); ()
        otherwise, or when the re-run crashed (the run then stands alone)."""
        val, best, floor = summary_val_bpb(summary), self._state.best, self.book.noise
        if (verdict or floor is None or best is None or val is None or result.returncode != 0
                or result.stopped or result.timed_out):
            return ()
        status, judged = self.book.rule.decide(val, best, can_confirm=True)
        if status != "confirm":
            return ()
        self.emit(EngineMessage(f"#{trial.n} improves by {judged.delta:.6f}, within the noise "
                                f"(threshold {judged.threshold:.6f}): running it once more to confirm"))
        again, _ = await self.rerun(trial.n, trial.commit, f"confirming re-run of #{trial.n}", "confirming", 1)
        return () if again is None else (again,)

    async def rerun(self, n: int, commit: str, label: str, phase: str, k: int,
                     score_always: bool = False) -> tuple[Optional[float], Optional[float]]:
        """Train HEAD (``commit``) once more; returns its val_bpb (None: it crashed)
        and holdout_bpb (cockpit.rules.holdout: scored when ``score_always`` or below the
        best; None otherwise)."""
        run_id = f"{self.config.tag}-{n}-{short(commit)}-{phase}-{k}-{uuid.uuid4().hex[:6]}"
        log_name = f"logs/exp-{n:04d}-{short(commit)}-rerun-{k}.log"
        if self.trainer.log_path(log_name).exists():
            log_name = f"logs/exp-{n:04d}-{short(commit)}-rerun-{k}-{self.config.tag}.log"
        await self.preflight(n)
        self.emit(PhaseChanged(n, phase))
        scores = self.trainer.holdout_path(n, commit, f"rerun-{k}")
        result, summary = await self.trainer.train(
            n, commit, label, log_name, scores, None if score_always else self._state.best,
            on_start=lambda pid: self.book.aux_running(run_id, pid), ended=lambda: self.book.aux_closed(run_id))
        self.book.times.account(result.timings(), experiment=False)
        holdout = read_holdout(scores)
        self._record(n, commit, label, result, summary, log_name, holdout)
        if result.stopped:
            raise Stopped
        ok = result.returncode == 0 and not result.timed_out
        return (summary_val_bpb(summary) if ok else None), (holdout if ok else None)

    def check_holdout(self, baseline_scores: Optional[tuple[float, float]], holdout: float) -> None:
        """After a keep with holdout_bpb ``holdout``: say so when val_bpb and holdout_bpb
        have moved apart since the baseline's (val_bpb, holdout_bpb) ``baseline_scores``
        beyond the noise floor (cockpit.rules.holdout ``divergence``)."""
        row, floor = self._state.last_row, self.book.noise
        if baseline_scores is None or row is None or row.score is None or floor is None:
            return
        warning = divergence(*baseline_scores, row.score, holdout, floor.sigma, floor.holdout_sigma)
        if warning:
            self.emit(EngineMessage(f"#{row.experiment}: {warning}", "warning"))

    def _record(self, n: int, commit: str, label: str, result: RunResult, summary: dict,
                log_path: str, holdout: Optional[float] = None) -> None:
        """records.jsonl ``kind`` "rerun": one re-run of ``commit`` (``label`` says
        which), its val_bpb (None when it crashed), holdout_bpb, attention backend,
        timings and log; a warning when its backend is not the incumbent's
        (cockpit.engine.verdict ``attention_warning``)."""
        val = summary_val_bpb(summary) if result.returncode == 0 and not result.stopped else None
        attention = attention_backend(summary, result.text)
        warning = attention_warning(self._state, label, attention) if val is not None else ""
        if warning:
            self.emit(EngineMessage(warning, "warning"))
        self.book.append_record({
            "kind": "rerun", "experiment": n, "tag": self.config.tag, "commit": short(commit), "label": label,
            "val_bpb": val, "holdout_bpb": holdout, "budget_s": self.book.budget_s, "attention": attention,
            "returncode": result.returncode, "timings": result.timings(), "summary": summary, "log_path": log_path,
            "time": now_iso()})
