"""Re-runs that make no results row: the noise floor and confirming re-runs.

Mixed into cockpit.engine.ratchet.Engine (which provides ``config``, ``book``,
``control``, ``ws``, ``emit``, ``times``, ``_state`` and ``_train_env``). See
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
from typing import Optional

from cockpit.engine.bookkeeping import Trial
from cockpit.engine.control import Stopped
from cockpit.events import EngineMessage, NoiseMeasured, PhaseChanged, RunFinished, RunStarted
from cockpit.rules.holdout import holdout_env, read_holdout
from cockpit.rules.noise import NoiseFloor, threshold
from cockpit.store.repo import short
from cockpit.training.run_guard import RunGuard
from cockpit.training.runner import Run, RunResult
from cockpit.rules.summary import parse_summary, summary_val_bpb


class Measuring:
    """The engine's re-runs (see module docstring)."""

    async def _measure_noise(self) -> None:
        """Re-run the baseline ``config.settings.noise_runs`` times; the sample standard
        deviation of its val_bpb values becomes the session's noise floor
        (NoiseMeasured event, ``noise-floor`` record). Re-runs that crash are left
        out (with a warning); fewer than two values leave the floor unmeasured."""
        k, base = self.config.settings.noise_runs, self._state.last_row
        if k <= 0 or base is None or base.val_bpb is None:
            return
        runs = [base.val_bpb]
        holdouts = [self._baseline_scores[1]] if self._baseline_scores else []
        for i in range(1, k + 1):
            val, holdout = await self._rerun(0, self._state.last_kept, f"noise floor: baseline re-run {i}/{k}",
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
        self.book.record_noise(floor)
        bar = threshold(self.config.settings.keep_threshold, floor.sigma)
        self.emit(NoiseMeasured(list(floor.runs), floor.sigma, bar))
        self.emit(EngineMessage(f"noise floor: sigma {floor.sigma:.6f} over {len(runs)} runs of the baseline; "
                                f"a keep needs an improvement over {bar:.6f} (or a confirming re-run)"))

    async def _confirm(self, trial: Trial, result: RunResult, summary: dict, verdict: str) -> tuple:
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
        again, _ = await self._rerun(trial.n, trial.commit, f"confirming re-run of #{trial.n}", "confirming", 1)
        return () if again is None else (again,)

    async def _rerun(self, n: int, commit: str, label: str, phase: str, k: int,
                     score_always: bool = False) -> tuple[Optional[float], Optional[float]]:
        """Train HEAD (``commit``) once more; returns its val_bpb (None: it crashed)
        and holdout_bpb (cockpit.rules.holdout: scored when ``score_always`` or below the
        best; None otherwise)."""
        run_id = f"{self.config.tag}-{n}-{short(commit)}-{phase}-{k}-{uuid.uuid4().hex[:6]}"
        log_name = f"logs/exp-{n:04d}-{short(commit)}-rerun-{k}.log"
        if (self.ws.path / log_name).exists():
            log_name = f"logs/exp-{n:04d}-{short(commit)}-rerun-{k}-{self.config.tag}.log"
        await self._preflight(n)
        self.emit(PhaseChanged(n, phase))
        budget = self.book.budget_s
        self.emit(RunStarted(n, short(commit), label, budget, str(self.ws.path / log_name)))
        limit = budget * self.config.hard_limit_factor + self.config.hard_limit_grace_s
        scores = self._holdout_path(n, commit, f"rerun-{k}")
        env = {**self._train_env(), **holdout_env(scores, None if score_always else self._state.best)}
        run = Run(self.config.run_command, self.ws.path, self.ws.path / log_name, env=env,
                  hard_limit_s=limit, kill_grace_s=self.config.kill_grace_s, experiment=n, emit=self.emit,
                  on_start=lambda pid: self.book.aux_running(run_id, pid))
        self.times.run_started()
        guard = self._guard_run()
        try:
            result = await self.control.guarded(run)
        finally:
            self.times.run_ended()
            self.book.aux_closed(run_id)
            self._restore_after_run(guard, n)
        summary = parse_summary(result.text)
        self.emit(RunFinished(n, short(commit), result.returncode, result.timed_out, summary,
                              result.timings()["wall_s"]))
        self.times.account(result.timings(), experiment=False)
        holdout = read_holdout(scores)
        self.book.record_rerun(n, commit, label, result, summary, log_name, holdout)
        if result.stopped:
            raise Stopped
        ok = result.returncode == 0 and not result.timed_out
        return (summary_val_bpb(summary) if ok else None), (holdout if ok else None)
