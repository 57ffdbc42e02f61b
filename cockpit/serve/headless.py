"""Headless mode: an ``emit`` that prints one readable line per engine event.

Progress lines are throttled (one per ``step_interval_s`` seconds per
experiment); each results row prints as a table line (with the agent's tokens
and cost when it reports them); SessionEnded prints a summary of the session
(rows by status, baseline and best val_bpb, agent tokens and cost). A pause
line says how to resume without a UI: SIGUSR1 resumes, SIGINT/SIGTERM stop.
Every line is redacted (cockpit.rules.redact): no API key reaches the output.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Optional, TextIO

from cockpit.events import (EngineMessage, Event, LogLine, PhaseChanged, ProposalReady,
                            ProposalRejected, RowLogged, RunFinished, RunStarted, SessionEnded,
                            SessionStarted, StepLogged)
from cockpit.rules.redact import redact
from cockpit.rules.usage import format_usage

_PRINTED_PHASES = ("preparing", "proposing", "measuring-noise", "confirming", "paused", "stopped")
_SUMMARY_LINE = re.compile(r"^---$|^\w+:\s+\S+$")
TABLE_HEADER = f"{'exp':>4}  {'commit':7}  {'val_bpb':>9}  {'mem_gb':>6}  {'status':7}  description"


class HeadlessPrinter:
    """Callable ``emit`` for headless runs; prints to ``stream`` (default stdout)."""

    def __init__(self, stream: Optional[TextIO] = None, step_interval_s: float = 5.0) -> None:
        self.stream = stream or sys.stdout
        self.step_interval_s = step_interval_s
        self.rows: list[RowLogged] = []
        self._last_step: dict[int, float] = {}
        self._in_summary: set[int] = set()
        self.session: Optional[dict] = None  # the latest TimeAccounted.session

    def __call__(self, event: Event) -> None:
        line = self.format(event)
        if line is not None:  # redacted: headless output is often redirected to a file
            print(redact(line), file=self.stream, flush=True)

    def format(self, event: Event) -> Optional[str]:
        """The line printed for ``event``, or None when it is skipped (throttled)."""
        handler = getattr(self, "_" + type(event).__name__, None)
        return handler(event) if handler is not None else None

    def _SessionStarted(self, e: SessionStarted) -> str:
        return (f"session {e.tag} on {e.branch} | profile {e.profile} | budget {e.budget_s:g}s | "
                f"agent {e.agent} | {e.workspace}")

    def _PhaseChanged(self, e: PhaseChanged) -> Optional[str]:
        if e.phase not in _PRINTED_PHASES:
            return None  # the next event (RunStarted, RowLogged, ...) says it better
        if e.phase == "paused":
            pid = os.getpid()
            return f"[exp {e.experiment}] paused (resume: kill -USR1 {pid}; stop: kill {pid})"
        return f"[exp {e.experiment}] {e.phase}"

    def _ProposalReady(self, e: ProposalReady) -> str:
        return f"[exp {e.experiment}] proposal: {e.description}"

    def _ProposalRejected(self, e: ProposalRejected) -> str:
        first = e.reason.splitlines()[0] if e.reason else ""
        return f"[exp {e.experiment}] reply {e.attempt} rejected: {first}"

    def _RunStarted(self, e: RunStarted) -> str:
        return f"[exp {e.experiment}] training {e.commit} ({e.budget_s:g}s budget), log {e.log_path}"

    def _StepLogged(self, e: StepLogged) -> Optional[str]:
        now = time.monotonic()
        last = self._last_step.get(e.experiment)
        if last is not None and now - last < self.step_interval_s:
            return None
        self._last_step[e.experiment] = now
        return (f"[exp {e.experiment}] step {e.step} ({e.progress_pct:.1f}%) loss {e.loss:.4f} | "
                f"{e.tok_per_s:,.0f} tok/s | mfu {e.mfu:.1f}% | {e.remaining_s:.0f}s left")

    def _LogLine(self, e: LogLine) -> Optional[str]:
        if e.text.strip() == "---":
            self._in_summary.add(e.experiment)
        if e.experiment in self._in_summary and _SUMMARY_LINE.match(e.text):
            return None  # the summary block; RunFinished reports val_bpb
        return f"    {e.text}"

    def _RunFinished(self, e: RunFinished) -> str:
        self._in_summary.discard(e.experiment)
        val = e.summary.get("val_bpb")
        shown = f"{val:.6f}" if isinstance(val, float) else "missing"
        how = "timed out" if e.timed_out else f"exit {e.returncode}"
        return f"[exp {e.experiment}] finished ({how}) in {e.wall_s:.1f}s, val_bpb {shown}"

    def _RowLogged(self, e: RowLogged) -> str:
        self.rows.append(e)
        line = (f"{e.experiment:>4}  {e.commit:7}  {e.val_bpb:9.6f}  {e.memory_gb:6.1f}  "
                f"{e.status:7}  {e.description}")
        if e.agent_usage:
            line += f"  [agent {format_usage(e.agent_usage)}]"
        return (TABLE_HEADER + "\n" + line) if len(self.rows) == 1 else line

    def _ProposalQueued(self, e) -> str:
        waits = " (awaits approval)" if e.awaiting_approval else ""
        return f"[exp {e.experiment}] queued while exp {e.running} trains: {e.description}{waits}"

    def _TimeAccounted(self, e) -> None:
        self.session = e.session
        return None  # summed up in the session's last line

    def _EngineMessage(self, e: EngineMessage) -> str:
        return f"[{e.level}] {e.text}"

    def _SessionEnded(self, e: SessionEnded) -> str:
        return f"session ended ({e.reason}): " + self.summary(e.agent_usage)

    def summary(self, usage: Optional[dict] = None) -> str:
        """One line: rows by status, baseline and reference (best kept) val_bpb, the agent's
        ``usage`` summed over the session (cockpit.rules.usage) when given."""
        counts = {s: sum(r.status == s for r in self.rows) for s in ("keep", "discard", "crash")}
        text = (f"{len(self.rows)} experiments, {counts['keep']} kept, {counts['discard']} discarded, "
                f"{counts['crash']} crashed")
        kept = [r for r in self.rows if r.status == "keep"]
        if kept:  # the reference after the last row (a forced keep or a revert may have moved it)
            base = kept[0].val_bpb
            best = self.rows[-1].best_val_bpb if self.rows[-1].best_val_bpb is not None else kept[-1].val_bpb
            text += f"; val_bpb {base:.6f} -> {best:.6f} ({best - base:+.6f})"
        if usage:
            text += f"; agent {format_usage(usage)} in {usage.get('calls', 0)} calls"
        if self.session and self.session.get("wall_s"):
            s = self.session
            text += (f"; GPU idle {100 * s['idle_share']:.1f}% of {s['wall_s']:.0f} s, "
                     f"{s['experiments_per_hour']:.1f} of an ideal {s['ideal_per_hour']:.1f} exp/h")
        return text
