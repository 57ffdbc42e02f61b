"""The fault-injection table of "Nothing lost": every fault kind, 3 times each at
different moments, on temporary workspaces with the fake train.py; then a table

    fault | injected | rows lost | files corrupt | orphan processes

rows lost: experiments started (an ``open`` entry of the journal) without
exactly one results.tsv row (matched by commit, between the size of
results.tsv its entry recorded and the next entry's), plus rows that belong
to no experiment (a second row of one); files corrupt:
results.tsv not readable by cockpit.ledger or pandas, or a records.jsonl or
journal line that is not JSON; orphans: processes whose command line holds
the injection's marker, alive after it. Exit status 1 when any count is not 0.

    .venv/bin/python bench/fault_table.py [--quick]

``--quick`` injects each fault once; tests/test_fault_table.py runs the full table (3 each).
Engine faults run the real CLI headless (kill -9 or the COCKPIT_FAULT hook,
then a restart); training faults, the harness change and ENOSPC run an
in-process engine with a scripted agent.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pandas as pd  # noqa: E402
from engine_support import (ScriptedAgent, die_headless, fast_config, lr, make_workspace, marked,  # noqa: E402
                            mode, restart_headless, run_session)

from cockpit import bookkeeping  # noqa: E402
from cockpit.events import PhaseChanged, Resume, RowLogged  # noqa: E402
from cockpit.journal import Journal  # noqa: E402
from cockpit.ledger import HEADER, read_rows  # noqa: E402
from cockpit.repo import short  # noqa: E402

ENGINE_PHASES = ("while-proposing", "after-commit", "during-training", "after-run", "mid-row", "after-row")
TRAINING_MODES = ("crash", "nan", "oom", "silent", "ignore_term", "grandkids", "setsid_grandkid")
MOMENTS = (0, 1, 2)  # the experiment hit (shifted by one where the baseline cannot be: proposing, training faults)


@dataclass
class Outcome:
    rows_lost: int
    files_corrupt: int
    orphans: int


# ------------------------------------------------------------------ checks --


def rows_lost(ws: Path) -> int:
    """Journal ``open`` entries without exactly one row of their commit in their stretch of results.tsv."""
    entries, _ = Journal(ws).read()
    opens = [e for e in entries if e["entry"] == "open"]
    data = (ws / "results.tsv").read_bytes() if (ws / "results.tsv").exists() else b""
    rows, offset = [], 0  # (byte offset of the line, commit)
    for line in data.splitlines(keepends=True):
        rows.append((offset, line.split(b"\t", 1)[0].decode()))
        offset += len(line)
    lost, matched = 0, set()
    for i, entry in enumerate(opens):
        end = opens[i + 1]["results_offset"] if i + 1 < len(opens) else len(data) + 1
        found = [o for o, c in rows if entry["results_offset"] <= o < end and c == short(entry["commit"])]
        lost += len(found) != 1
        matched.update(found)
    return lost + len([o for o, _ in rows[1:] if o not in matched])  # + rows of no experiment (a duplicate)


def files_corrupt(ws: Path) -> int:
    bad = 0
    try:
        rows = read_rows(ws / "results.tsv")
        frame = pd.read_csv(ws / "results.tsv", sep="\t")
        bad += tuple(frame.columns) != HEADER or len(frame) != len(rows)
    except Exception:  # noqa: BLE001 - any failure to read is a corrupt file
        bad += 1
    for path in (ws / "records.jsonl", ws / ".cockpit" / "journal.jsonl"):
        try:
            for line in path.read_text(encoding="utf-8").splitlines():
                json.loads(line)
        except (OSError, ValueError):
            bad += 1
    return bad


def orphans(marker: str) -> int:
    for _ in range(20):  # a SIGKILL just sent may take a moment
        if not marked(marker):
            return 0
        time.sleep(0.1)
    return len(marked(marker))


# --------------------------------------------------------------- injections --


def engine_kill(phase: str, moment: int) -> Callable[[Path, str], None]:
    """kill -9 of a headless engine at ``phase`` of experiment ``moment``, then a restart."""
    moment = moment + 1 if phase == "while-proposing" else moment  # the baseline is not proposed

    def inject(root: Path, marker: str) -> Path:
        ws = make_workspace(root / "ws").path
        die_headless(ws, phase, moment, marker, root / "slow")
        done = restart_headless(ws, marker)
        if done.returncode != 0:
            raise RuntimeError(f"the restart failed: {done.stdout}{done.stderr}")
        return ws
    return inject


def _session(root: Path, marker: str, replies: list, on_event=None, **config) -> Path:
    ws = make_workspace(root / "ws")
    settings = fast_config(max_experiments=len(replies) + 1, run_command=(sys.executable, "-u", "train.py", marker),
                           **config)
    reason, _ = asyncio.run(run_session(ws, ScriptedAgent(replies), settings, on_event))
    if reason != "max-experiments":
        raise RuntimeError(f"the session ended with {reason}")
    return ws.path


def _oks(count: int) -> list:
    """``count`` proposals that train fine: MATRIX_LR 0.04 -> 0.05 -> ..."""
    values = [f"0.0{k}" for k in range(4, 5 + count)]
    return [lr(values[k], values[k + 1]) for k in range(count)]


def training_fault(kind: str, moment: int) -> Callable[[Path, str], None]:
    """train.py of experiment ``moment`` + 1 misbehaves (MODE ``kind``); one good experiment follows."""
    def inject(root: Path, marker: str) -> Path:
        ws = _session(root, marker, _oks(moment) + [mode(kind), lr(f"0.0{4 + moment}", "0.08")])
        if read_rows(ws / "results.tsv")[moment + 1].status != "crash":
            raise RuntimeError(f"train.py {kind} did not end as a crash row")
        return ws
    return inject


def harness_change(moment: int) -> Callable[[Path, str], None]:
    """prepare.py is edited after the row of experiment ``moment``; put back at the pause, then resume."""
    def inject(root: Path, marker: str) -> Path:
        original: list[str] = []

        def on_event(engine, event):
            prepare = engine.ws.prepare_py
            if isinstance(event, RowLogged) and event.experiment == moment:
                original.append(prepare.read_text())
                prepare.write_text(original[0] + "# a hand edit\n")
            if isinstance(event, PhaseChanged) and event.phase == "paused":
                prepare.write_text(original[0])
                asyncio.get_running_loop().call_later(0.05, engine.send, Resume())
        ws = _session(root, marker, _oks(moment + 1), on_event)
        if not original:
            raise RuntimeError("prepare.py was never edited")
        return ws
    return inject


def disk_full(moment: int) -> Callable[[Path, str], None]:
    """The write of experiment ``moment``'s row fails with ENOSPC once; resume at the pause."""
    def inject(root: Path, marker: str) -> Path:
        real, calls = bookkeeping.append_row, []

        def append_row(path, row):
            calls.append(row)
            if len(calls) == moment + 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(path, row)

        def on_event(engine, event):
            if isinstance(event, PhaseChanged) and event.phase == "paused":
                asyncio.get_running_loop().call_later(0.05, engine.send, Resume())
        bookkeeping.append_row = append_row
        try:
            ws = _session(root, marker, _oks(moment + 1), on_event)
        finally:
            bookkeeping.append_row = real
        if len(calls) <= moment + 1:
            raise RuntimeError("the row write never failed")
        return ws
    return inject


def faults(times: int) -> list[tuple[str, list]]:
    """(fault name, [injections]) for every kind, ``times`` moments each."""
    moments = MOMENTS[:times]
    table = [(f"engine kill -9 {p}", [engine_kill(p, m) for m in moments]) for p in ENGINE_PHASES]
    table += [(f"train.py {k}", [training_fault(k, m) for m in moments]) for k in TRAINING_MODES]
    table += [("harness change", [harness_change(m) for m in moments]),
              ("ENOSPC on results.tsv", [disk_full(m) for m in moments])]
    return table


def run_one(inject: Callable[[Path, str], Path]) -> Outcome:
    marker = f"faultmark-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix="fault-table-") as tmp:
        ws = inject(Path(tmp), marker)
        return Outcome(rows_lost(ws), files_corrupt(ws), orphans(marker))


def run_table(times: int = 3) -> list[tuple[str, int, Outcome]]:
    """[(fault, injected, summed Outcome)] for every fault kind."""
    result = []
    for name, injections in faults(times):
        total = Outcome(0, 0, 0)
        for inject in injections:
            one = run_one(inject)
            total = Outcome(total.rows_lost + one.rows_lost, total.files_corrupt + one.files_corrupt,
                            total.orphans + one.orphans)
        result.append((name, len(injections), total))
    return result


def format_table(result: list[tuple[str, int, Outcome]]) -> str:
    lines = ["| fault | injected | rows lost | files corrupt | orphan processes |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {name} | {n} | {o.rows_lost} | {o.files_corrupt} | {o.orphans} |" for name, n, o in result]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="inject each fault once, not 3 times")
    args = parser.parse_args()
    started = time.monotonic()
    result = run_table(1 if args.quick else 3)
    print(format_table(result))
    print(f"\n{sum(n for _, n, _ in result)} injections in {time.monotonic() - started:.0f} s")
    return int(any(o.rows_lost or o.files_corrupt or o.orphans for _, _, o in result))


if __name__ == "__main__":
    sys.exit(main())
