"""The session report: ``cockpit report`` writes one session's markdown report
and a PNG of its val_bpb staircase, in the shape of upstream autoresearch
session reports (baseline -> best, the top wins, counts, cost, the figure).

Sources: ``results.tsv`` is the source of truth for the rows (one per
experiment); ``records.jsonl`` enriches them and says which session each row
belongs to. Rows and records are appended in the same order, so each row is
matched to the next experiment record with its commit, status and description
(rows without one, a forced keep or a revert, belong to the session of the row
before them).

**results.tsv alone** (an upstream autoresearch session: no records.jsonl, or
none of its experiment records matches a row) is enough. Any file of the
upstream schema reads: the header ``commit val_bpb memory_gb status
description``, tab-separated; a commit cell ``baseline``; free-text
descriptions (commas, quotes, unicode; a stray tab stays in the description);
statuses in any case; crash rows at ``0.000000``; a last line without its
newline when it is a whole row. Sessions are told apart by their baseline rows
(cockpit.rules.standing ``starts_session``: each later row whose commit cell or
description reads ``baseline`` starts a new one) and named ``session-1``,
``session-2``, ... in file order; the report covers the last one unless
``tag`` names another, and says how many the file holds. Settings, dates,
cost and the noise floor are then "not recorded".

A corrupt line in either file is skipped with a warning, and the report lists
it under "Notes"; a missing or empty results.tsv, or a session with no rows, is
a ``ReportError``. The running best, the incumbent after each row, the best
and the wins come from cockpit.rules.standing, the fold the engine and the cockpit
use, so the report agrees with the status bar and the staircase.

Records written by features built elsewhere are read when present, and the
report says "not measured in this session" when they are not:

- the noise floor, one session-level object (the last one of the tag counts)::

      {"kind": "noise-floor", "tag": "nov22-0221", "runs": [2.3875, 2.3891, 2.3869], "sigma": 0.0011}

  ``runs`` are val_bpb of repeated runs of one commit, ``sigma`` their standard
  deviation in bits per byte (computed from ``runs`` when absent or not a number);
- the holdout score, on an experiment record (``"kind": "experiment"``) of a
  kept row: ``"holdout_bpb": 2.4012`` (val_bpb on held-out data, bits per byte);
- the attention backend of a run, on its experiment record:
  ``"attention": "fa3:kernels-community/flash-attn3"`` ("" or absent: unknown,
  shown as ``-``); "Kept experiments" lists every kept row with it (a forced
  keep's is its commit's run's) and says so when they differ.

Hardware comes from the records (a ``device``, ``device_name``, ``gpu`` or
``gpu_name`` field of a record or of its ``summary``) or else from the first run
logs (train.py prints ``device cpu``/``cuda``/``mps``, not the device's name);
"not recorded" when neither has it.

Nothing here imports matplotlib at module level: ``draw_staircase`` imports it
(Agg canvas, no pyplot) when it draws, so ``cockpit``'s start-up stays light.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, NamedTuple, Optional

from cockpit.store.ledger import LedgerError
from cockpit.store.records import read_records as ledger_records
from cockpit.store.results import Line, Row, clean_description, read_lines
from cockpit.rules.standing import running_best
from cockpit.rules.usage import add_usage

Warn = Callable[[str], None]

TOP_WINS = 10
# records of proposals that got no row ("superseded": a pipelined proposal never committed)
PROPOSAL_KINDS = ("vetoed", "dropped", "withdrawn", "superseded")
LOG_HEAD_BYTES = 64 * 1024  # of a run log read for the device line
LOGS_TRIED = 3  # run logs read for the device, at most
PNG_SIZE_IN, PNG_DPI = (12, 6), 100  # 1200 x 600 pixels
KEEP_COLOR, DISCARD_COLOR, CRASH_COLOR = "#2ca02c", "#7f7f7f", "#d62728"
_DEVICE_KEYS = ("gpu_name", "device_name", "gpu", "device", "hardware")
_LOG_NAME = re.compile(r"^\s*(?:gpu|gpu_name|device_name)\s*:\s*(\S.*?)\s*$", re.IGNORECASE | re.MULTILINE)
_LOG_DEVICE = re.compile(r"\bdevice[ :=]+(cuda|cpu|mps)\b", re.IGNORECASE)
_DEVICE_WORDS = {"cuda": "cuda GPU", "cpu": "cpu, no GPU", "mps": "mps (Apple GPU)"}


class ReportError(ValueError):
    """Nothing to report (missing or empty files, an unknown tag, no rows); one line."""


@dataclass
class ReportRow:
    """One results.tsv row of the session and what the report derives from it.

    ``experiment`` is the session's experiment number; ``val_bpb`` None for a row
    without a score (crash, vetoed run: 0.000000 in results.tsv); ``record`` the
    matched records.jsonl object (None for forced-keep and revert rows);
    ``delta`` (keeps only) val_bpb minus the kept val_bpb in force before it;
    ``incumbent`` the kept val_bpb in force after this row (what the next run
    must beat, cockpit.rules.standing); ``reverted`` marks a keep that a later revert
    un-kept; ``line`` its line number in results.tsv; ``attention`` the attention
    backend of the run behind it ("" when unknown: no record, an older record)."""

    experiment: int
    commit: str
    val_bpb: Optional[float]
    memory_gb: float
    status: str
    description: str
    record: Optional[dict] = None
    delta: Optional[float] = None
    incumbent: Optional[float] = None
    reverted: bool = False
    line: int = 0  # its line in results.tsv (1 is the header)
    attention: str = ""


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
    (their standard deviation, bits per byte; None when it cannot be told)."""

    runs: list
    sigma: Optional[float]


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
    run_s: float = 0.0
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


# ------------------------------------------------------------------ reading --

def read_results(path: Path, warn: Warn, whole_last_line: bool = False) -> list[Line]:
    """The rows of results.tsv with their line numbers, read by the one results reader
    (cockpit.store.results ``read_lines``: corrupt lines and a cut-off last line
    skipped with a ``warn`` line each). Raises ReportError when the file is missing,
    its header is wrong or it has no row."""
    if not path.is_file():
        raise ReportError(f"no {path.name} in {path.parent}: nothing to report (run a session first)")
    try:
        rows = read_lines(path, warn, whole_last_line)
    except LedgerError as exc:
        raise ReportError(str(exc)) from None
    if not rows:
        raise ReportError(f"{path} has no results rows: nothing to report (run a session first)")
    return rows


def read_records(path: Path, warn: Warn) -> list[dict]:
    """The objects of records.jsonl, skipping (with a ``warn`` line each) a line that
    is not a JSON object; ``[]`` when the file is missing or holds none (the
    report is then made from results.tsv alone)."""
    if not path.is_file():
        return []
    return ledger_records(path, skip=warn)


def session_tags(records: list[dict]) -> list[str]:
    """The tags of ``records`` in the order they first appear (oldest session first)."""
    tags: list[str] = []
    for record in records:
        tag = record.get("tag")
        if isinstance(tag, str) and tag and tag not in tags:
            tags.append(tag)
    return tags


def newest_tag(records: list[dict]) -> Optional[str]:
    """The tag of the newest session: that of the last record with a tag, or None."""
    for record in reversed(records):
        tag = record.get("tag")
        if isinstance(tag, str) and tag:
            return tag
    return None


def _matches(row: Row, record: dict, strict: bool) -> bool:
    if str(record.get("commit", ""))[:7] != row.commit[:7] or record.get("status") != row.status:
        return False
    return not strict or clean_description(str(record.get("description", ""))) == row.description


def match_records(rows: list[Row], records: list[dict]) -> list[Optional[dict]]:
    """For each row, its experiment record or None. Both files are appended in the
    same order: a row takes the next experiment record with its commit, status and
    description, else (a description edited by hand) the very next record when
    commit and status agree."""
    experiments = [r for r in records if r.get("kind") == "experiment"]
    matched: list[Optional[dict]] = []
    start = 0
    for row in rows:
        found = next((j for j in range(start, len(experiments)) if _matches(row, experiments[j], True)), None)
        if found is None and start < len(experiments) and _matches(row, experiments[start], False):
            found = start
        matched.append(None if found is None else experiments[found])
        if found is not None:
            start = found + 1
    return matched


def _row_tags(matched: list[Optional[dict]]) -> list[Optional[str]]:
    """Each row's session tag: its record's, else the row before it's (else the one after)."""
    tags = [m.get("tag") if m else None for m in matched]
    for i in range(1, len(tags)):
        tags[i] = tags[i] or tags[i - 1]
    for i in range(len(tags) - 2, -1, -1):
        tags[i] = tags[i] or tags[i + 1]
    return tags


# ---------------------------------------------------------------- building --

def build_report(workspace: Path, tag: Optional[str] = None, warn: Optional[Warn] = None) -> Report:
    """The report of session ``tag`` (default: the newest session in records.jsonl;
    from results.tsv alone, the last one: module docstring) of the workspace at
    ``workspace``. Corrupt lines are skipped, passed to ``warn`` and listed in
    the report's notes. Raises ReportError with one line when there is nothing
    to report."""
    notes: list[str] = []

    def note(text: str) -> None:
        notes.append(text)
        if warn is not None:
            warn(text)

    workspace = Path(workspace)
    later: list[str] = []  # records.jsonl's notes, said after results.tsv's (the order the files are named in)
    records = read_records(workspace / "records.jsonl", later.append)
    results = workspace / "results.tsv"
    lines = read_results(results, note, whole_last_line=not records)
    for text in later:
        note(text)
    rows = [line.row for line in lines]
    matched = match_records(rows, records)
    if not any(matched):
        report = _results_only(workspace, lines, tag, bool(records))
        report.notes = notes
        return report
    tags = session_tags(records)
    tag = tag or newest_tag(records)
    if tag is None:
        raise ReportError(f"no record in {workspace / 'records.jsonl'} names its session (tag); use a workspace "
                          "cockpit ran")
    if tag not in tags:
        raise ReportError(f"no session {tag!r} in {workspace / 'records.jsonl'}; sessions there: "
                          f"{', '.join(tags) or 'none'}")
    session_rows = _session_rows(lines, matched, _row_tags(matched), tag)
    if not session_rows:
        raise ReportError(f"session {tag!r} has no results rows in {results}")
    own = [r for r in records if r.get("tag") == tag]
    report = Report(tag=tag, workspace=workspace, rows=session_rows, records=own, sessions=tags, notes=notes)
    report.started, report.ended = _time_range(own)
    experiments = [r for r in own if r.get("kind") == "experiment"]
    report.hardware = hardware(workspace, experiments)
    report.profile = _values(experiments or own, "profile")
    report.budget = _values(experiments or own, "budget_s", lambda v: f"{float(v):g} s per run")
    report.agent, report.model = _agent(experiments or own)
    report.program = _values(experiments, "program")
    _ratchet(report)
    report.proposals = {kind: sum(r.get("kind") == kind for r in own) for kind in PROPOSAL_KINDS}
    for record in own:
        if isinstance(record.get("agent_usage"), dict):
            report.usage = add_usage(report.usage, record["agent_usage"])
    report.run_s = sum(_number((r.get("timings") or {}).get("wall_s")) or 0.0 for r in experiments)
    report.noise = noise_floor(own)
    report.holdout = [(row, _number(row.record.get("holdout_bpb"))) for row in session_rows
                      if row.status == "keep" and row.record and _number(row.record.get("holdout_bpb")) is not None]
    return report


def results_sessions(lines: list[Line]) -> list[list[Line]]:
    """results.tsv's rows split into sessions at their baseline rows
    (cockpit.rules.standing ``starts_session``), oldest first."""
    sessions: list[list[Line]] = []
    for line, standing in zip(lines, running_best(line.row for line in lines)):
        if standing.session == len(sessions):
            sessions.append([])
        sessions[-1].append(line)
    return sessions


def _results_only(workspace: Path, lines: list[Line], tag: Optional[str], had_records: bool) -> Report:
    """The report of one session of results.tsv read alone: ``tag`` ``session-N``
    (default: the last)."""
    sessions = results_sessions(lines)
    names = [f"session-{i}" for i in range(1, len(sessions) + 1)]
    tag = tag or names[-1]
    if tag not in names:
        where = "no records.jsonl matches its rows" if had_records else "no records.jsonl"
        raise ReportError(f"no session {tag!r} in {workspace / 'results.tsv'} ({where}: its sessions are told "
                          f"apart by their baseline rows); sessions there: {', '.join(names)}")
    rows = [ReportRow(n, line.row.commit, _scored(line.row), line.row.memory_gb, line.row.status,
                      line.row.description, line=line.line)
            for n, line in enumerate(sessions[names.index(tag)])]
    report = Report(tag=tag, workspace=workspace, rows=rows, records=[], sessions=names, results_only=True)
    _ratchet(report)
    return report


def _scored(row: Row) -> Optional[float]:
    """A row's val_bpb, None for a crash or a row without one (0.000000)."""
    return row.val_bpb if row.status != "crash" and math.isfinite(row.val_bpb) and row.val_bpb > 0 else None


def _session_rows(lines: list[Line], matched: list[Optional[dict]], tags: list[Optional[str]],
                  tag: str) -> list[ReportRow]:
    out: list[ReportRow] = []
    for line, record, row_tag in zip(lines, matched, tags):
        if row_tag != tag:
            continue
        row = line.row
        number = record.get("experiment") if record else None
        if not isinstance(number, int):
            number = out[-1].experiment + 1 if out else 0
        out.append(ReportRow(number, row.commit, _scored(row), row.memory_gb, row.status, row.description, record,
                             line=line.line, attention=_attention(record, row.commit, out)))
    return out


def _attention(record: Optional[dict], commit: str, before: list[ReportRow]) -> str:
    """The attention backend of a row's run: its record's ``attention``, else (a
    forced keep or revert row: no record of its own) that of the latest row
    before it of the same commit; "" when unknown."""
    if record is not None:
        value = record.get("attention")
        return value.strip() if isinstance(value, str) else ""
    return next((r.attention for r in reversed(before) if r.commit == commit and r.record is not None), "")


def _ratchet(report: Report) -> None:
    """The running best over the session's rows (cockpit.rules.standing): each keep's
    delta against the incumbent before it, the incumbent after each row, the
    reverted keeps, the baseline (the first keep), the best (the incumbent at
    the end), the lowest kept val_bpb not reverted, and the wins (standing keeps
    that lowered the incumbent)."""
    for row, standing in zip(report.rows, running_best(report.rows)):
        row.delta = standing.delta if standing.change == "keep" else None
        row.incumbent = standing.best
        if standing.reverted is not None:
            standing.reverted.reverted = True
        report.best = standing.incumbent
    kept = [r for r in report.rows if r.status == "keep" and r.val_bpb is not None]
    report.baseline = kept[0] if kept else None
    standing = [r for r in kept if not r.reverted]
    lowest = min(standing, key=lambda r: r.val_bpb) if standing else None
    report.lowest = lowest if lowest is not None and report.best is not None and lowest.val_bpb < report.best.val_bpb \
        else None
    wins = [Win(r.experiment, r.commit, r.val_bpb, r.delta, r.description) for r in standing
            if r.delta is not None and r.delta < 0]
    report.wins = sorted(wins, key=lambda w: (w.delta, w.experiment))[:TOP_WINS]


def _number(value) -> Optional[float]:
    """``value`` as a finite float, or None (missing, text, bool, NaN, inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _parse_time(text) -> Optional[datetime]:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _time_range(records: list[dict]) -> tuple[Optional[datetime], Optional[datetime]]:
    """(earliest start, latest end) over the records' started/ended/time fields."""
    starts = [t for r in records for t in (_parse_time(r.get("started")), _parse_time(r.get("time"))) if t]
    ends = [t for r in records for t in (_parse_time(r.get("ended")), _parse_time(r.get("time"))) if t]
    return (min(starts) if starts else None), (max(ends) if ends else None)


def _values(records: list[dict], key: str, show: Callable = str) -> str:
    """The distinct values of ``key`` in ``records``, shown and joined, or "not recorded"."""
    seen: list[str] = []
    for record in records:
        value = record.get(key)
        if value in (None, ""):
            continue
        try:
            text = show(value)
        except (TypeError, ValueError):
            text = str(value)
        if text not in seen:
            seen.append(text)
    return ", ".join(seen) or "not recorded"


def _agent(records: list[dict]) -> tuple[str, str]:
    """(agent, model) from the records: a record names its agent by ``agent.name``,
    ``offline`` or, for the litellm agent, the model; a ``model`` field wins."""
    models = _values(records, "model")
    names = _values(records, "agent")
    if names == "not recorded":
        return names, models
    agents = ", ".join("offline" if n == "offline" else "litellm" for n in names.split(", "))
    agents = ", ".join(dict.fromkeys(agents.split(", ")))
    if models == "not recorded":
        litellm = [n for n in names.split(", ") if n != "offline"]
        models = ", ".join(litellm) if litellm else "none (the offline agent calls no model)"
    return agents, models


def hardware(workspace: Path, experiments: list[dict]) -> str:
    """The device the session's runs used: a device field of a record or its summary,
    else the device line of the first run logs (``device cpu``; train.py prints no
    device name), else "not recorded"."""
    for record in experiments:
        for source in (record, record.get("summary") if isinstance(record.get("summary"), dict) else {}):
            for key in _DEVICE_KEYS:
                value = source.get(key)
                if isinstance(value, str) and value.strip():
                    return f"{value.strip()} (from records.jsonl)"
    tried = 0
    for record in experiments:
        log = record.get("log_path")
        if not isinstance(log, str) or not log or tried >= LOGS_TRIED:
            continue
        tried += 1
        try:
            with open(workspace / log, "rb") as handle:
                text = handle.read(LOG_HEAD_BYTES).decode("utf-8", errors="replace").replace("\r", "\n")
        except OSError:
            continue
        name, device = _LOG_NAME.search(text), _LOG_DEVICE.search(text)
        if name:
            return f"{name.group(1)} (from {log})"
        if device:
            kind = device.group(1).lower()
            named = "" if kind == "cpu" else "; device name not recorded"
            return f"{_DEVICE_WORDS[kind]} (from {log}{named})"
    return "not recorded"


def noise_floor(records: list[dict]) -> Optional[NoiseFloor]:
    """The last ``noise-floor`` record among ``records`` as a NoiseFloor (``sigma``
    from the record, else the sample standard deviation of ``runs``), or None."""
    found = [r for r in records if r.get("kind") == "noise-floor"]
    if not found:
        return None
    record = found[-1]
    raw = record.get("runs")
    runs = [v for v in (_number(x) for x in (raw if isinstance(raw, list) else [])) if v is not None]
    sigma = _number(record.get("sigma"))
    if sigma is None and len(runs) >= 2:
        sigma = statistics.stdev(runs)
    return NoiseFloor(runs, sigma)


# --------------------------------------------------------------- rendering --

NOT_MEASURED = "not measured in this session"


def _cell(text: str) -> str:
    """Text made safe for a markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.1f} min"
    return f"{int(minutes // 60)} h {int(minutes % 60):02d} min"


def _date_range(report: Report) -> str:
    start, end = report.started, report.ended
    if start is None or end is None:
        return "dates not recorded"
    if start.date() == end.date():
        return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M} UTC"
    return f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC"


def render_markdown(report: Report, staircase_name: str) -> str:
    """The report as markdown; ``staircase_name`` is the PNG's path relative to the
    markdown file (embedded as ``![staircase](...)``)."""
    sigma = report.noise.sigma if report.noise and report.noise.sigma else None
    branch = "" if report.results_only else f" · branch `autoresearch/{report.tag}`"
    lines = [f"# Session report: {report.tag}", "",
             f"{_date_range(report)} · workspace `{report.workspace.name}`{branch}", "",
             *_source_lines(report),
             "| setting | value |", "| --- | --- |",
             f"| hardware | {_cell(report.hardware)} |", f"| profile | {_cell(report.profile)} |",
             f"| time budget | {_cell(report.budget)} |", f"| agent | {_cell(report.agent)} |",
             f"| model | {_cell(report.model)} |", f"| program | {_cell(report.program)} |"]
    lines += ["", "## Result", "", *_result_lines(report, sigma)]
    lines += ["", "## Top wins", "", *_win_lines(report, sigma)]
    lines += ["", "## Kept experiments", "", *_kept_lines(report)]
    lines += ["", "## Counts", "", *_count_lines(report)]
    lines += ["", "## Cost", "", *_cost_lines(report)]
    lines += ["", "## Noise floor and holdout", "", *_noise_lines(report), *_holdout_lines(report)]
    lines += ["", "## Staircase", "", f"![staircase]({staircase_name})", ""]
    if report.notes:
        lines += ["## Notes", "", *(f"- {_cell(text)}" for text in report.notes), ""]
    sources = "`results.tsv` alone" if report.results_only else "`results.tsv` and `records.jsonl`"
    lines += ["---", "", f"Written by `cockpit report` from {sources}.", ""]
    return "\n".join(lines)


def _source_lines(report: Report) -> list[str]:
    """Where the report's rows come from and how many sessions the files hold."""
    count = len(report.sessions)
    if report.results_only:
        rows = report.rows
        span = f"lines {rows[0].line}–{rows[-1].line}" if rows and rows[0].line else "its rows"
        which = (f"it holds {count} sessions, told apart by their baseline rows; this report covers "
                 f"{report.tag} ({span}); `--tag session-N` reports another" if count > 1
                 else f"one session ({span})")
        return [f"Read from `results.tsv` alone (no `records.jsonl` for its rows: an upstream-style session): "
                f"{which}. Settings, dates and cost are not recorded there.", ""]
    if count > 1:
        return [f"`records.jsonl` names {count} sessions ({', '.join(_cell(t) for t in report.sessions)}); "
                f"this report covers {_cell(report.tag)} (`--tag TAG` reports another).", ""]
    return []


def _result_lines(report: Report, sigma: Optional[float]) -> list[str]:
    lines = ["| | val_bpb | experiment |", "| --- | --- | --- |"]
    for label, row in (("baseline", report.baseline), ("best", report.best)):  # best: the incumbent at the end
        if row is None:
            lines.append(f"| {label} | none | no kept experiment with a val_bpb (the baseline crashed?) |")
        else:
            lines.append(f"| {label} | {row.val_bpb:.6f} | #{row.experiment} `{row.commit}` {_cell(row.description)} |")
    if report.lowest is not None:
        row = report.lowest
        lines.append(f"| lowest kept | {row.val_bpb:.6f} | #{row.experiment} `{row.commit}` {_cell(row.description)} "
                     "(not the incumbent: a later forced keep of a worse run is the reference) |")
    improvement, relative = report.improvement, report.relative_improvement
    if improvement is not None:
        words = "" if relative is None else f"{relative:.2f} % lower than the baseline"
        if sigma:
            words += f"; {improvement / sigma:.1f} σ of the noise floor"
        lines.append(f"| improvement | {improvement:.6f} | {words} |")
    return lines


def _win_lines(report: Report, sigma: Optional[float]) -> list[str]:
    lines = [f"Kept experiments by their delta against the keep before them, largest improvement first "
             f"(at most {TOP_WINS}).", ""]
    if not report.wins:
        return lines + ["No kept experiment beat the keep before it."]
    if sigma:
        lines += ["| # | commit | val_bpb | delta | Δ/σ | description |", "| --- | --- | --- | --- | --- | --- |"]
    else:
        lines += ["| # | commit | val_bpb | delta | description |", "| --- | --- | --- | --- | --- |"]
    for win in report.wins:
        in_sigma = f" {win.delta / sigma:+.1f} |" if sigma else ""
        lines.append(f"| {win.experiment} | `{win.commit}` | {win.val_bpb:.6f} | {win.delta:+.6f} |{in_sigma} "
                     f"{_cell(win.description)} |")
    return lines


def _kept_lines(report: Report) -> list[str]:
    """Every kept row in order, with the attention backend its run used (``-``: unknown)."""
    kept = [r for r in report.rows if r.status == "keep"]
    if not kept:
        return ["No experiment was kept."]
    lines = ["Every kept row in order, with the attention backend its run used (train.py's `attention:`; "
             "`-`: not recorded).", "",
             "| # | commit | val_bpb | attention | description |", "| --- | --- | --- | --- | --- |"]
    for row in kept:
        score = "none" if row.val_bpb is None else f"{row.val_bpb:.6f}"
        backend = f"`{_cell(row.attention)}`" if row.attention else "-"
        lines.append(f"| {row.experiment} | `{row.commit}` | {score} | {backend} | {_cell(row.description)} |")
    backends = list(dict.fromkeys(r.attention for r in kept if r.attention))
    if len(backends) > 1:
        named = ", ".join(f"`{_cell(b)}`" for b in backends)
        lines += ["", f"The kept rows ran on {len(backends)} attention backends ({named}): val_bpb on one does not "
                      "compare with val_bpb on another (another kernel trains another number of steps in the same "
                      "budget)."]
    return lines


def _count_lines(report: Report) -> list[str]:
    counts, proposals, rows = report.counts, report.proposals, report.rows
    per_hour = report.experiments_per_hour
    forced = sum("[forced" in r.description for r in rows)
    reverted = sum(r.description.endswith("[reverted]") for r in rows)
    vetoed_runs = sum(r.description.endswith("[vetoed]") for r in rows)
    lines = ["| | count |", "| --- | --- |",
             f"| experiments (results rows) | {len(rows)} |",
             f"| keep / discard / crash | {counts['keep']} / {counts['discard']} / {counts['crash']} |",
             f"| proposals vetoed / dropped / withdrawn (no row) | {proposals.get('vetoed', 0)} / "
             f"{proposals.get('dropped', 0)} / {proposals.get('withdrawn', 0)} |"]
    if report.results_only:
        lines[-1] = "| proposals vetoed / dropped / withdrawn (no row) | not recorded (no records.jsonl) |"
    if proposals.get("superseded"):
        lines.append(f"| pipelined proposals superseded (no row) | {proposals['superseded']} |")
    return lines + [f"| forced keeps / reverts / vetoed runs | {forced} / {reverted} / {vetoed_runs} |",
                    f"| experiments per hour | {'n/a' if per_hour is None else f'{per_hour:.1f}'} |"]


def _cost_lines(report: Report) -> list[str]:
    lines = ["| | |", "| --- | --- |"]
    usage = report.usage
    if usage is None:
        why = " (the offline agent calls no model)" if report.agent == "offline" else ""
        lines += [f"| agent tokens (prompt / completion) | not reported{why} |", f"| agent cost | not reported{why} |"]
    else:
        cost = usage.get("cost_usd")
        money = "unknown (no price for the model)" if cost is None else f"${cost:.4f}"
        calls = f" in {usage.get('calls', 0):,} calls" if usage.get("calls") else ""
        lines += [f"| agent tokens (prompt / completion) | {usage.get('prompt_tokens', 0):,} / "
                  f"{usage.get('completion_tokens', 0):,}{calls} |", f"| agent cost | {money} |"]
    no_gpu = "; the runs had no GPU" if "no GPU" in report.hardware else ""
    if report.results_only:
        lines.append("| GPU hours (sum of run wall time) | not recorded (no records.jsonl) |")
    else:
        lines.append(f"| GPU hours (sum of run wall time) | {report.gpu_hours:.4f} h "
                     f"({_duration(report.run_s)}{no_gpu}) |")
    wall = report.wall_s
    lines.append("| session wall hours | "
                 + ("not recorded |" if wall is None else f"{wall / 3600:.4f} h ({_duration(wall)}) |"))
    return lines


def _noise_lines(report: Report) -> list[str]:
    noise = report.noise
    if noise is None:
        return [f"- noise floor: {NOT_MEASURED}"]
    spread = f", {min(noise.runs):.6f} to {max(noise.runs):.6f}" if noise.runs else ""
    if noise.sigma is None:
        return [f"- noise floor: recorded without a usable sigma ({len(noise.runs)} runs{spread})"]
    return [f"- noise floor: σ = {noise.sigma:.6f} bpb over {len(noise.runs)} runs{spread}"]


def _holdout_lines(report: Report) -> list[str]:
    if not report.holdout:
        return [f"- holdout: {NOT_MEASURED}"]
    lines = ["- holdout: val_bpb against holdout_bpb of the kept experiments", "",
             "| # | commit | val_bpb | holdout_bpb | holdout - val |", "| --- | --- | --- | --- | --- |"]
    for row, holdout in report.holdout:
        lines.append(f"| {row.experiment} | `{row.commit}` | {row.val_bpb:.6f} | {holdout:.6f} | "
                     f"{holdout - row.val_bpb:+.6f} |")
    return lines


# ----------------------------------------------------------------- drawing --

def draw_staircase(report: Report, path: Path) -> None:
    """Draw the val_bpb staircase of ``report`` as a 1200x600 PNG at ``path``: kept
    experiments green with their descriptions, the running best (the kept
    val_bpb in force) as a step line, discards as faded dots (worse than the
    baseline: triangles on the top edge), rows without a val_bpb as red crosses
    on the bottom edge. Imports matplotlib (Agg canvas) here, not at start-up."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=PNG_SIZE_IN, dpi=PNG_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    rows = report.rows
    kept = [r for r in rows if r.status == "keep" and r.val_bpb is not None]
    discards = [r for r in rows if r.status != "keep" and r.val_bpb is not None]
    unscored = [r for r in rows if r.val_bpb is None]
    scored = [r.val_bpb for r in kept + discards]
    if kept:
        top, bottom = kept[0].val_bpb, min(r.val_bpb for r in kept)
        top = max(top, max(r.val_bpb for r in kept))
    elif scored:
        top, bottom = max(scored), min(scored)
    else:
        top = bottom = None
    gains = sum(1 for r in kept if r.delta is not None and r.delta < 0 and not r.reverted)
    title = f"{report.tag}: {len(rows)} experiments, {gains} kept improvement{'' if gains == 1 else 's'}"
    if top is None:
        ax.text(0.5, 0.5, f"no val_bpb to plot: all {len(rows)} experiments crashed", ha="center", va="center",
                transform=ax.transAxes, fontsize=14, color=CRASH_COLOR)
    else:
        margin = max((top - bottom) * 0.15, abs(top) * 1e-3)
        low, high = bottom - margin, top + margin
        shown = [r for r in discards if r.val_bpb <= high]
        above = [r for r in discards if r.val_bpb > high]
        if shown:
            ax.scatter([r.experiment for r in shown], [r.val_bpb for r in shown], s=28, color=DISCARD_COLOR,
                       alpha=0.45, label=f"discard ({len(shown)})", zorder=2)
        if above:
            edge = high - margin * 0.08
            ax.scatter([r.experiment for r in above], [edge] * len(above), marker="^", s=36,
                       color=DISCARD_COLOR, alpha=0.45, label=f"discard above the plot ({len(above)})", zorder=2)
            for r in above:
                ax.annotate(f"{r.val_bpb:.4f}", (r.experiment, edge), xytext=(0, -12), textcoords="offset points",
                            fontsize=7, ha="center", color=DISCARD_COLOR)
        if unscored:
            ax.scatter([r.experiment for r in unscored], [low + margin * 0.08] * len(unscored), marker="x", s=40,
                       color=CRASH_COLOR, label=f"crash or no val_bpb ({len(unscored)})", zorder=3)
        steps = [(r.experiment, r.incumbent) for r in rows if r.incumbent is not None]
        if steps:
            xs, ys = zip(*steps)
            ax.step(xs, ys, where="post", color=KEEP_COLOR, linewidth=2, label="running best (kept)", zorder=3)
            sigma = report.noise.sigma if report.noise else None
            if sigma:
                ax.fill_between(xs, [y - sigma for y in ys], [y + sigma for y in ys], step="post",
                                color=KEEP_COLOR, alpha=0.12, label=f"± noise floor σ = {sigma:.4f}")
        if kept:
            ax.scatter([r.experiment for r in kept], [r.val_bpb for r in kept], s=56, color=KEEP_COLOR,
                       edgecolors="black", linewidths=0.6, label=f"keep ({len(kept)})", zorder=4)
            for r in kept:
                text = r.description if len(r.description) <= 40 else r.description[:39] + "…"
                ax.annotate(text, (r.experiment, r.val_bpb), xytext=(6, 6), textcoords="offset points",
                            fontsize=8, rotation=20, color="#1a5e1a", alpha=0.9)
        ax.set_ylim(low, high)
        numbers = [r.experiment for r in rows]
        ax.set_xlim(min(numbers) - 0.5, max(numbers) + 0.75)
        ax.legend(loc="lower left", fontsize=9, framealpha=0.9)
        if report.baseline and report.best:
            title += f"\nval_bpb {report.baseline.val_bpb:.6f} → {report.best.val_bpb:.6f}"
            if report.relative_improvement is not None:
                title += f" ({-report.relative_improvement:+.2f} %)"
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Experiment #", fontsize=12)
    ax.set_ylabel("Validation BPB (lower is better)", fontsize=12)
    ax.set_title(title, fontsize=13)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")


# ----------------------------------------------------------------- writing --

def _file_tag(tag: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", tag)


def report_paths(workspace: Path, tag: str, out: Optional[Path] = None) -> tuple[Path, Path]:
    """(markdown, png) paths: ``out`` (a directory: ``report-<tag>.md`` in it), else
    ``<workspace>/report-<tag>.md``; the PNG next to it, ``<stem>-staircase.png``."""
    name = f"report-{_file_tag(tag)}.md"
    markdown = Path(workspace) / name if out is None else Path(out)
    if markdown.is_dir():
        markdown = markdown / name
    return markdown, markdown.with_name(f"{markdown.stem}-staircase.png")


def write_report(workspace: Path, tag: Optional[str] = None, out: Optional[Path] = None,
                 warn: Optional[Warn] = None) -> tuple[Path, Path, Report]:
    """Build session ``tag``'s report (default: the newest session) and write the
    markdown and the staircase PNG (see ``report_paths``). Returns (markdown path,
    png path, report). Raises ReportError for nothing to report and for files
    that cannot be written."""
    report = build_report(workspace, tag, warn)
    markdown, png = report_paths(workspace, report.tag, out)
    try:
        draw_staircase(report, png)
        markdown.write_text(render_markdown(report, png.name), encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write the report: {exc.strerror or exc} ({exc.filename or markdown})") from None
    return markdown, png, report
