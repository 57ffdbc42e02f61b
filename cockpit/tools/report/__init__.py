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

import re
from pathlib import Path
from typing import Optional

from cockpit.tools.report.build import build_report
from cockpit.tools.report.markdown import render_markdown
from cockpit.tools.report.model import Report, ReportError, Warn
from cockpit.tools.report.staircase import draw_staircase


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
