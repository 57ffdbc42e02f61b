"""Building the Report of one session from its rows and records: the running best
(cockpit.rules.standing), the wins, settings, dates, cost, hardware, noise floor and
holdout; a session from results.tsv alone told apart by its baseline rows.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from cockpit.tools.report.model import PROPOSAL_KINDS, TOP_WINS, NoiseFloor, Report, ReportError, ReportRow, Warn, Win
from cockpit.tools.report.reading import (match_records, newest_tag, read_records, read_results, row_tags,
                                            session_tags)
from cockpit.rules.standing import running_best
from cockpit.rules.usage import add_usage
from cockpit.store.results import Line


LOG_HEAD_BYTES = 64 * 1024  # of a run log read for the device line
LOGS_TRIED = 3  # run logs read for the device, at most
_DEVICE_KEYS = ("gpu_name", "device_name", "gpu", "device", "hardware")
_LOG_NAME = re.compile(r"^\s*(?:gpu|gpu_name|device_name)\s*:\s*(\S.*?)\s*$", re.IGNORECASE | re.MULTILINE)
_LOG_DEVICE = re.compile(r"\bdevice[ :=]+(cuda|cpu|mps)\b", re.IGNORECASE)
_DEVICE_WORDS = {"cuda": "cuda GPU", "cpu": "cpu, no GPU", "mps": "mps (Apple GPU)"}


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
    session_rows = _session_rows(lines, matched, row_tags(matched), tag)
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
    reruns = [r for r in own if r.get("kind") == "rerun"]  # noise-floor and confirming runs use the device too
    report.run_s = sum(_number((r.get("timings") or {}).get("wall_s")) or 0.0 for r in experiments + reruns)
    report.reruns = len(reruns)
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
    rows = [ReportRow(replace(line.row, experiment=n), line=line.line)
            for n, line in enumerate(sessions[names.index(tag)])]
    report = Report(tag=tag, workspace=workspace, rows=rows, records=[], sessions=names, results_only=True)
    _ratchet(report)
    return report


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
        out.append(ReportRow(replace(row, experiment=number), record, line=line.line,
                             attention=_attention(record, row.commit, out)))
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
    origin = record.get("remembered_from")
    return NoiseFloor(runs, sigma, origin if isinstance(origin, str) else "", str(record.get("measured") or ""))
