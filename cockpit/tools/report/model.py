"""What a session report holds: the Report, its rows (ReportRow), wins and noise floor, and
ReportError (cockpit.tools.report builds and writes it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, NamedTuple, Optional

from cockpit.row import Row


Warn = Callable[[str], None]
TOP_WINS = 10
# records of proposals that got no row ("superseded": a pipelined proposal never committed)
PROPOSAL_KINDS = ("vetoed", "dropped", "withdrawn", "superseded")


class ReportError(ValueError):
    """Nothing to report (missing or empty files, an unknown tag, no rows); one line."""


@dataclass
class ReportRow:
    """One results.tsv row of the session (``row``, cockpit.row ``Row``, numbered) and
    what the report derives from it.

    The row's fields read through (``experiment``, ``commit``, ``memory_gb``,
    ``status``, ``description``), except ``val_bpb``: None for a row without a
    score (crash, vetoed run: 0.000000 in results.tsv; ``Row.score``).
    ``record`` the matched records.jsonl object (None for forced-keep and revert
    rows); ``delta`` (keeps only) val_bpb minus the kept val_bpb in force before
    it; ``incumbent`` the kept val_bpb in force after this row (what the next run
    must beat, cockpit.rules.standing); ``reverted`` marks a keep that a later
    revert un-kept; ``line`` its line number in results.tsv; ``attention`` the
    attention backend of the run behind it ("" when unknown: no record, an older
    record)."""

    row: Row
    record: Optional[dict] = None
    delta: Optional[float] = None
    incumbent: Optional[float] = None
    reverted: bool = False
    line: int = 0  # its line in results.tsv (1 is the header)
    attention: str = ""

    @property
    def experiment(self) -> int:
        """The session's number for the row (0 is the baseline)."""
        return self.row.experiment or 0

    @property
    def commit(self) -> str:
        """The row's commit as results.tsv holds it (7 hex characters)."""
        return self.row.commit

    @property
    def val_bpb(self) -> Optional[float]:
        """Bits per byte, None for a row without a score."""
        return self.row.score

    @property
    def memory_gb(self) -> float:
        """Peak GPU memory in GB (0.0 for a crash)."""
        return self.row.memory_gb

    @property
    def status(self) -> str:
        """keep, discard or crash."""
        return self.row.status

    @property
    def description(self) -> str:
        """The row's one-line description."""
        return self.row.description


class Win(NamedTuple):
    """A kept experiment that lowered val_bpb: ``delta`` (negative, bits per byte)
    against the keep before it."""

    experiment: int
    commit: str
    val_bpb: float
    delta: float
    description: str


class NoiseFloor(NamedTuple):
    """A session's noise floor: ``runs`` (val_bpb of repeated runs) and ``sigma``
    (their standard deviation, bits per byte; None when it cannot be told);
    ``remembered_from`` the session that measured it when this one reused it
    (cockpit.engine.noise_memory; "" when measured here), ``measured`` when (ISO-8601)."""

    runs: list
    sigma: Optional[float]
    remembered_from: str = ""
    measured: str = ""


@dataclass
class Report:
    """What a session report says, built by ``build_report`` from a workspace.

    Times are datetimes (UTC) or None; ``budget`` and the other settings are
    display strings ("not recorded" when no record says); ``usage`` is the
    summed agent usage (cockpit.rules.usage; None when the agent reported none);
    ``run_s`` the summed wall seconds of the session's runs; ``holdout`` the kept
    rows with a holdout score, as (row, holdout_bpb). ``best`` is the incumbent
    at the session's end (cockpit.rules.standing: what the status bar shows, a forced
    keep's even when worse); ``lowest`` the lowest kept val_bpb not reverted when
    that is another row. ``sessions`` names the sessions the files hold, oldest
    first; ``results_only``: read from results.tsv alone (module docstring);
    ``notes`` the skipped lines and other warnings, as said."""

    tag: str
    workspace: Path
    rows: list
    records: list
    started: Optional[datetime] = None
    ended: Optional[datetime] = None
    hardware: str = "not recorded"
    profile: str = "not recorded"
    budget: str = "not recorded"
    agent: str = "not recorded"
    model: str = "not recorded"
    program: str = "not recorded"
    baseline: Optional[ReportRow] = None
    best: Optional[ReportRow] = None
    wins: list = field(default_factory=list)
    proposals: dict = field(default_factory=dict)
    usage: Optional[dict] = None
    run_s: float = 0.0  # seconds of training runs: experiments and re-runs (noise floor, confirming)
    reruns: int = 0  # re-runs among them (records.jsonl kind "rerun")
    noise: Optional[NoiseFloor] = None
    holdout: list = field(default_factory=list)
    lowest: Optional[ReportRow] = None
    sessions: list = field(default_factory=list)
    results_only: bool = False
    notes: list = field(default_factory=list)

    @property
    def counts(self) -> dict:
        """Rows per status: ``{"keep": n, "discard": n, "crash": n}``."""
        return {status: sum(r.status == status for r in self.rows) for status in ("keep", "discard", "crash")}

    @property
    def improvement(self) -> Optional[float]:
        """Baseline minus best val_bpb in bits per byte (positive: better), or None."""
        if self.baseline is None or self.best is None:
            return None
        return self.baseline.val_bpb - self.best.val_bpb

    @property
    def relative_improvement(self) -> Optional[float]:
        """The improvement as a percentage of the baseline's val_bpb, or None."""
        if self.improvement is None or not self.baseline.val_bpb:
            return None
        return 100.0 * self.improvement / self.baseline.val_bpb

    @property
    def wall_s(self) -> Optional[float]:
        """Seconds from the session's first record's start to its last record's end."""
        if self.started is None or self.ended is None:
            return None
        return max(0.0, (self.ended - self.started).total_seconds())

    @property
    def gpu_hours(self) -> float:
        """The summed wall time of the session's runs, in hours."""
        return self.run_s / 3600.0

    @property
    def experiments_per_hour(self) -> Optional[float]:
        """Rows per hour of session wall time, or None when the wall time is unknown or 0."""
        if not self.wall_s:
            return None
        return len(self.rows) / (self.wall_s / 3600.0)
