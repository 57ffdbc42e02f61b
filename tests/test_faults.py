"""Nothing lost: kill -9 of a headless engine at every phase, then a restart on the
same workspace (cockpit.engine.reconcile's rule); and the engine's own refusals: a
changed harness, a full disk, a read-only workspace, a deleted branch, secrets."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from engine_support import (ScriptedAgent, die_headless, fast_config, lr, lr_to, make_workspace, marked, mode, of_type,
                            restart_headless, run_session)

from cockpit.engine import preflight
from cockpit.commands import Resume, Stop
from cockpit.events import EngineMessage, PhaseChanged, ProposalReady, RowLogged, RunStarted, SessionStarted
from cockpit.store.journal import Journal, unclosed
from cockpit.store.records import read_records
from cockpit.store.results import HEADER, read_rows
from cockpit.store.repo import GitRepo, short
from cockpit.store.workspace import sha256_file

PHASES = ("after-commit", "during-training", "after-run", "mid-row", "after-row")
MOMENTS = (0, 1, 2)  # the experiment the engine dies in (0: the baseline)


@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize("phase", PHASES)
def test_kill_9_then_restart_loses_nothing(tmp_path, phase, moment):
    ws = make_workspace(tmp_path / "ws").path
    marker = f"faultmark-{uuid.uuid4().hex[:10]}"
    die_headless(ws, phase, moment, marker, tmp_path / "slow")
    entries, _ = Journal(ws).read()
    dead = [e for e in entries if e["entry"] == "open" and e["experiment"] == moment][-1]
    assert unclosed(entries) == [dead]

    done = restart_headless(ws, marker)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "session ended (max-experiments): 2 experiments" in done.stdout

    rows, commit = read_rows(ws / "results.tsv"), short(dead["commit"])
    assert len(rows) == moment + 1 + 2 and rows[moment].commit == commit
    assert [r.commit for r in rows[:moment + 1]].count(commit) == 1  # never a second row
    frame = pd.read_csv(ws / "results.tsv", sep="\t")
    assert tuple(frame.columns) == HEADER and len(frame) == len(rows)
    records = [r for r in read_records(ws / "records.jsonl") if r["kind"] == "experiment"]
    assert [(r["tag"], r["experiment"]) for r in records] == [("t1", n) for n in range(moment + 1)] + [
        ("t2", 0), ("t2", 1)]
    last = records[moment]
    assert (last["commit"], last["status"]) == (commit, rows[moment].status)
    if phase in ("after-commit", "during-training"):
        assert (rows[moment].status, last["interrupted"]) == ("crash", True)
        assert rows[moment].description.endswith(" [interrupted]") and rows[moment].val_bpb == 0.0
    elif phase in ("after-run", "mid-row"):  # mid-row: half the row written, then the kill; completed whole
        assert rows[moment].status in ("keep", "discard") and last["interrupted"] is True
        assert rows[moment].description.endswith(" [recovered]") and rows[moment].val_bpb > 0
    else:
        assert last["interrupted"] is False and "[" not in rows[moment].description

    keep = rows[moment].status == "keep" or not dead["parent"]
    assert GitRepo(ws).branch_head("autoresearch/t1") == (dead["commit"] if keep else dead["parent"])
    entries, _ = Journal(ws).read()
    assert unclosed(entries) == [] and {"t1", "t2"} <= {e["tag"] for e in entries if e["entry"] == "end"}
    if phase == "during-training":
        assert "killed the run left behind by the dead engine" in done.stdout
    if phase == "mid-row":
        assert "the last line was cut off when the engine died" in done.stdout
        assert len(list((ws / ".cockpit").glob("torn-results-*.txt"))) == 1
    assert marked(marker) == []


@pytest.mark.parametrize("moment", (1, 2, 3))
def test_kill_9_while_the_agent_proposes_loses_nothing(tmp_path, moment):
    ws = make_workspace(tmp_path / "ws").path
    marker = f"faultmark-{uuid.uuid4().hex[:10]}"
    die_headless(ws, "while-proposing", moment, marker, tmp_path / "slow")
    entries, _ = Journal(ws).read()
    assert unclosed(entries) == [] and moment not in [e["experiment"] for e in entries if e["entry"] == "open"]
    before, head = read_rows(ws / "results.tsv"), GitRepo(ws).branch_head("autoresearch/t1")
    assert len(before) == moment

    done = restart_headless(ws, marker)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = read_rows(ws / "results.tsv")
    assert rows[:moment] == before and len(rows) == moment + 2  # no row for it, none twice
    assert len({r.commit for r in before}) == moment
    records = [r for r in read_records(ws / "records.jsonl") if r["kind"] == "experiment"]
    assert [(r["tag"], r["experiment"]) for r in records] == [("t1", n) for n in range(moment)] + [
        ("t2", 0), ("t2", 1)]
    assert GitRepo(ws).branch_head("autoresearch/t1") == head
    assert unclosed(Journal(ws).read()[0]) == [] and marked(marker) == []


# A misbehaving train.py (the fake's MODEs): each must end as one crash row within
# the hard limit (2 x budget + grace), then the kill grace and the pipe drain, and
# leave no process of its group behind.
TRAINING_FAULTS = {
    "oom": " [crash]",              # CUDA out-of-memory traceback, then SIGKILL (exit -9)
    "silent": " [timed out]",       # hangs without printing a byte
    "ignore_term": " [timed out]",  # hangs and ignores SIGTERM: the group needs SIGKILL
    "grandkids": " [crash]",        # exits 1, leaving two SIGTERM-proof grandchildren on its pipe
    "setsid_grandkid": " [crash]",  # exits 1, leaving a grandchild out of its process group (setsid) on its pipe
    "escapee": " [crash]",          # exits 1, leaving a double-forked setsid sleeper with no environment, off the pipe
}


@pytest.mark.parametrize("kind", sorted(TRAINING_FAULTS))
async def test_a_misbehaving_run_is_one_crash_row_and_leaves_no_process(tmp_path, kind):
    from cockpit.training.runner import DRAIN_S

    ws = make_workspace(tmp_path / "ws")
    marker = f"faultmark-{uuid.uuid4().hex[:10]}"
    config = fast_config(max_experiments=3, run_command=(sys.executable, "-u", "train.py", marker))
    times: dict = {}

    def on_event(engine, event):
        if isinstance(event, (RunStarted, RowLogged)) and event.experiment == 1:
            times[type(event).__name__] = time.monotonic()

    reason, events = await run_session(ws, ScriptedAgent([mode(kind), lr("0.04", "0.08")]), config, on_event)
    assert reason == "max-experiments"
    rows = read_rows(ws.results_tsv)
    assert [r.status for r in rows] == ["keep", "crash", "keep"]
    expected = TRAINING_FAULTS[kind].replace(" [crash]", "")
    assert rows[1].description == f"mode {kind}{expected}" and rows[1].val_bpb == 0.0
    limit = 2 * config.settings.budget_s + config.hard_limit_grace_s + config.kill_grace_s + DRAIN_S
    assert times["RowLogged"] - times["RunStarted"] < limit + 1.0
    record = [r for r in read_records(ws.records_jsonl) if r["kind"] == "experiment"][1]
    assert record["stray_processes"] == (1 if kind in ("setsid_grandkid", "escapee") else 0)
    if kind == "oom":
        assert record["returncode"] == -9
        assert "CUDA out of memory" in (ws.path / record["log_path"]).read_text()
    for _ in range(20):
        if not marked(marker):
            break
        await asyncio.sleep(0.1)
    assert marked(marker) == []
    assert unclosed(Journal(ws.path).read()[0]) == []


# ------------------------------------------------------------------ refusals --


@pytest.mark.parametrize("noise_runs", [3, 0], ids=["noise-floor", "no-noise-floor"])
async def test_a_changed_harness_refuses_the_run_and_pauses(tmp_path, noise_runs):
    ws = make_workspace(tmp_path / "ws")
    original = ws.prepare_py.read_text()
    sha = sha256_file(ws.prepare_py)

    def on_event(engine, event):
        if isinstance(event, RowLogged) and event.experiment == 0:
            ws.prepare_py.write_text(original + "# a hand edit\n")
        if isinstance(event, PhaseChanged) and event.phase == "paused":
            ws.prepare_py.write_text(original)
            asyncio.get_running_loop().call_later(0.1, engine.send, Resume())

    reason, events = await run_session(ws, ScriptedAgent([lr("0.04", "0.08")]),
                                       fast_config(max_experiments=2, noise_runs=noise_runs), on_event)
    assert reason == "max-experiments"
    errors = [e.text for e in of_type(events, EngineMessage) if e.level == "error"]
    assert len(errors) == 1 and "prepare.py (the fixed harness) changed" in errors[0]
    assert "the run is refused" in errors[0] and "paused" in errors[0]
    # refused at the check before the next run: the noise floor's first re-run of the baseline, or #1's
    baseline = next(i for i, e in enumerate(events) if isinstance(e, RowLogged))
    paused = events.index(PhaseChanged(0 if noise_runs else 1, "paused"))
    assert not [e for e in events[baseline:paused] if isinstance(e, RunStarted)]
    assert of_type(events, SessionStarted)[0].harness_sha256 == sha
    records = read_records(ws.records_jsonl)
    assert {r["harness_sha256"] for r in records if r["kind"] == "experiment"} == {sha}
    entries, _ = Journal(ws.path).read()
    assert [e["harness_sha256"] for e in entries if e["entry"] in ("session", "open")] == [sha] * 3


async def test_stop_while_a_run_is_refused_withdraws_it(tmp_path):
    ws = make_workspace(tmp_path / "ws")

    def on_event(engine, event):
        if isinstance(event, ProposalReady):  # after the checks between experiments, before the commit
            ws.prepare_py.write_text(ws.prepare_py.read_text() + "# a hand edit\n")
        if isinstance(event, PhaseChanged) and event.phase == "paused":
            engine.send(Stop())

    reason, _ = await run_session(ws, ScriptedAgent([lr("0.04", "0.08")]), fast_config(), on_event)
    assert reason == "stopped" and len(read_rows(ws.results_tsv)) == 1
    withdrawn = [r for r in read_records(ws.records_jsonl) if r["kind"] == "withdrawn"]
    assert [r["reason"] for r in withdrawn] == ["the session stopped before it ran"]
    assert unclosed(Journal(ws.path).read()[0]) == [] and "0.04" in ws.train_py.read_text()
    assert ws.prepare_py.read_text().endswith("# a hand edit\n")  # the reset kept the human's edit


async def test_a_full_disk_pauses_and_the_row_lands_after_resume(tmp_path, monkeypatch):
    ws = make_workspace(tmp_path / "ws")
    from cockpit.engine import bookkeeping
    real, failures = bookkeeping.append_row, []

    def append_row(path, row):
        if row.description.startswith("MATRIX_LR") and not failures:
            failures.append(row)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, row)

    def on_event(engine, event):
        if isinstance(event, PhaseChanged) and event.phase == "paused":
            asyncio.get_running_loop().call_later(0.1, engine.send, Resume())

    monkeypatch.setattr(bookkeeping, "append_row", append_row)
    agent = ScriptedAgent({1: lr("0.04", "0.08"), 2: lr_to("0.16")})  # by idea: see engine_support
    reason, events = await run_session(ws, agent, fast_config(max_experiments=3), on_event)
    assert reason == "max-experiments" and len(failures) == 1
    errors = [e.text for e in of_type(events, EngineMessage) if e.level == "error"]
    assert errors[0].startswith("cannot write results.tsv: No space left on device; nothing is lost")
    rows = read_rows(ws.results_tsv)
    assert [(r.status, r.description) for r in rows] == [
        ("keep", "baseline"), ("keep", "MATRIX_LR 0.04 -> 0.08"), ("discard", "MATRIX_LR 0.08 -> 0.16")]
    assert [r["experiment"] for r in read_records(ws.records_jsonl) if r["kind"] == "experiment"] == [0, 1, 2]
    # one ask per proposal (pipelined, and one more for #2 asked ahead against the baseline, set aside)
    superseded = [r for r in read_records(ws.records_jsonl) if r["kind"] == "superseded"]
    assert PhaseChanged(2, "paused") in events and len(agent.contexts) == 2 + len(superseded)


async def test_a_read_only_workspace_or_full_disk_refuses_to_start(tmp_path, monkeypatch):
    ws = make_workspace(tmp_path / "ws")
    monkeypatch.setattr(preflight.os, "access", lambda path, mode: Path(path) != ws.path)
    reason, _ = await run_session(ws, ScriptedAgent([]), fast_config())
    assert reason.startswith(f"error: {ws.path} is not writable (a read-only file or file system)")
    monkeypatch.undo()
    monkeypatch.setattr(preflight, "MIN_FREE_BYTES", 1 << 62)
    reason, _ = await run_session(ws, ScriptedAgent([]), fast_config())
    assert reason.startswith("error: the disk is full:") and not ws.results_tsv.exists()


async def test_missing_data_names_the_fix(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    failing = (sys.executable, "-c", "import sys; sys.exit('prepare.py: error: no prepared data in /cache')")
    reason, _ = await run_session(ws, ScriptedAgent([]), fast_config(prepare_command=failing))
    assert reason == (f"error: prepare.py failed (exit 1): prepare.py: error: no prepared data in /cache; fix what "
                      f"it says (missing data: run `python prepare.py` in {ws.path} until it ends with 'ready'), "
                      "then start again; its output is in logs/prepare.log")
    assert not ws.results_tsv.exists()


async def test_a_deleted_branch_pauses_until_it_is_back(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    repo = GitRepo(ws.path)
    kept: list[str] = []

    def on_event(engine, event):
        if isinstance(event, RowLogged) and event.experiment == 0:
            kept.append(repo.head_commit())
            subprocess.run(["git", "checkout", "-q", "main"], cwd=ws.path, check=True)
            subprocess.run(["git", "branch", "-q", "-D", "autoresearch/t1"], cwd=ws.path, check=True)
        if isinstance(event, PhaseChanged) and event.phase == "paused":
            subprocess.run(["git", "checkout", "-q", "-b", "autoresearch/t1", kept[0]], cwd=ws.path, check=True)
            asyncio.get_running_loop().call_later(0.1, engine.send, Resume())

    reason, events = await run_session(ws, ScriptedAgent([lr("0.04", "0.08")]), fast_config(max_experiments=2),
                                       on_event)
    assert reason == "max-experiments"
    errors = [e.text for e in of_type(events, EngineMessage) if e.level == "error"]
    assert errors == [f"the run branch autoresearch/t1 is gone (deleted?); recreate it at the last keep with "
                      f"`git checkout -b autoresearch/t1 {short(kept[0])}`; paused: fix it, then resume"]
    assert [r.status for r in read_rows(ws.results_tsv)] == ["keep", "keep"]
    assert repo.current_branch() == "autoresearch/t1"


# ------------------------------------------------------------------- secrets --

KEY = "sk-test-RECOGNISABLE-123"


async def test_an_api_key_reaches_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    source = (Path(__file__).parent / "fakes" / "train.py").read_text().replace(
        'print("---")', 'print("key:", os.environ.get("OPENAI_API_KEY", "absent"), flush=True)\nprint("---")')
    ws = make_workspace(tmp_path / "ws", train_py=source)
    echo = lr("0.04", "0.08").replace("Description: MATRIX_LR 0.04 -> 0.08", f"Description: use {KEY} now")
    agent = ScriptedAgent([f"I think {KEY} is nice", echo, mode("crash")])
    reason, events = await run_session(ws, agent, fast_config(max_experiments=3))
    assert reason == "max-experiments"
    hits = [str(p) for p in ws.path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert hits == [] and KEY not in repr(events)  # events: what a UI shows and a daemon's replay log keeps
    history = subprocess.run(["git", "log", "--all", "-p", "--format=%B"], cwd=ws.path, capture_output=True,
                             text=True, check=True).stdout
    assert KEY not in history and "use [redacted] now" in history
    assert "key: absent" in (ws.path / read_records(ws.records_jsonl)[0]["log_path"]).read_text()  # not passed on
    assert (ws.path / ".cockpit" / "journal.jsonl").exists()
