"""The report as markdown, in the shape of upstream autoresearch session reports:
source, result, top wins, kept experiments, counts, cost, noise floor, holdout, notes.
"""

from __future__ import annotations

from typing import Optional

from cockpit.tools.report.model import Report, TOP_WINS


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
        runs = f", re-runs included ({report.reruns})" if report.reruns else ""
        lines.append(f"| GPU hours (sum of run wall time) | {report.gpu_hours:.4f} h "
                     f"({_duration(report.run_s)}{runs}{no_gpu}) |")
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
    origin = f"; remembered from session {noise.remembered_from}, measured {noise.measured or 'at an unknown time'}" \
        if noise.remembered_from else ""
    return [f"- noise floor: σ = {noise.sigma:.6f} bpb over {len(noise.runs)} runs{spread}{origin}"]


def _holdout_lines(report: Report) -> list[str]:
    if not report.holdout:
        return [f"- holdout: {NOT_MEASURED}"]
    lines = ["- holdout: val_bpb against holdout_bpb of the kept experiments", "",
             "| # | commit | val_bpb | holdout_bpb | holdout - val |", "| --- | --- | --- | --- | --- |"]
    for row, holdout in report.holdout:
        lines.append(f"| {row.experiment} | `{row.commit}` | {row.val_bpb:.6f} | {holdout:.6f} | "
                     f"{holdout - row.val_bpb:+.6f} |")
    return lines
