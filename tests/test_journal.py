"""The journal and the restart rule (cockpit.store.journal, cockpit.engine.reconcile) on states a
dead engine leaves, built by hand; redaction at the write boundaries."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest
from engine_support import ScriptedAgent, fast_config, lr, make_workspace, run_session

from cockpit.store import ledger
from cockpit.events import EngineMessage, LogLine
from cockpit.store.journal import Journal, JournalError, JournalLock, entry_id, unclosed
from cockpit.store.ledger import LedgerError
from cockpit.store.records import read_records
from cockpit.store.results import Row, append_row, read_rows
from cockpit.rules.redact import REDACTED, redact, secret_values
from cockpit.store.repo import GitRepo, short
from cockpit.training.runner import Run

SUMMARY = ("---\nval_bpb:          1.000000\ntraining_seconds: 0.2\ntotal_seconds:    0.4\npeak_vram_mb:     1536.0\n"
           "mfu_percent:      39.80\ntotal_tokens_M:   0.1\nnum_steps:        5\nnum_params_M:     0.5\n"
           "depth:            4\n")


def dead_engine(ws) -> tuple[str, str]:
    """Session t0 died in experiment 1: its baseline row is written and kept, #1
    (MATRIX_LR 0.04 -> 0.08) committed on autoresearch/t0 and opened. Returns (base, commit)."""
    repo, journal = GitRepo(ws.path), Journal(ws.path)
    base = repo.create_branch("autoresearch/t0")
    journal.append("session", tag="t0", branch="autoresearch/t0", base=base, harness_sha256="h", agent="offline",
                   profile="tiny", budget_s=0.2, pid=1)
    append_row(ws.results_tsv, Row(short(base), 1.1, 1.5, "keep", "baseline"))
    journal.append("row", id=entry_id("t0", 0, base), tag="t0", experiment=0, commit=base, status="keep", kept=base)
    ws.train_py.write_text(ws.train_py.read_text().replace("MATRIX_LR = 0.04", "MATRIX_LR = 0.08"))
    commit = repo.commit_file("train.py", "MATRIX_LR 0.04 -> 0.08")
    journal.append("open", id=entry_id("t0", 1, commit), tag="t0", experiment=1, commit=commit, parent=base,
                   description="MATRIX_LR 0.04 -> 0.08", started="s", results_offset=ws.results_tsv.stat().st_size,
                   log_path="logs/exp-0001-dead.log", harness_sha256="h")
    return base, commit


def warnings(events) -> list[str]:
    return [e.text for e in events if isinstance(e, EngineMessage) and e.level == "warning"]


async def test_a_session_journals_every_experiment(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    await run_session(ws, ScriptedAgent([lr("0.04", "0.08")]), fast_config(max_experiments=2))
    entries, note = Journal(ws.path).read()
    assert note is None and unclosed(entries) == []
    experiment = ["open", "train", "row", "close"]
    noise_floor = ["aux-train", "aux-close"] * 3  # the baseline's 3 re-runs
    assert [e["entry"] for e in entries] == ["session"] + experiment + noise_floor + experiment + ["end"]
    opened = [e for e in entries if e["entry"] == "open"]
    assert opened[0]["parent"] == "" and opened[1]["parent"] == opened[0]["commit"]
    assert opened[0]["results_offset"] == 0 and opened[1]["results_offset"] > 0
    assert entries[-1]["reason"] == "max-experiments"
    assert ".cockpit/" in (ws.path / ".gitignore").read_text() and not GitRepo(ws.path).is_dirty()


async def test_an_interrupted_run_is_a_crash_row_and_its_branch_goes_back(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    base, commit = dead_engine(ws)
    reason, events = await run_session(ws, ScriptedAgent([]), fast_config(tag="t2", max_experiments=1))
    assert reason == "max-experiments"
    rows = read_rows(ws.results_tsv)
    assert [(r.commit, r.status, r.description) for r in rows] == [
        (short(base), "keep", "baseline"), (short(commit), "crash", "MATRIX_LR 0.04 -> 0.08 [interrupted]"),
        (short(base), "keep", "baseline")]
    record = read_records(ws.records_jsonl)[0]
    assert (record["tag"], record["experiment"], record["interrupted"], record["val_bpb"]) == ("t0", 1, True, None)
    assert "+MATRIX_LR = 0.08" in record["diff"] and "missing or empty" in record["reason"]
    assert GitRepo(ws.path).branch_head("autoresearch/t0") == base
    assert any("moved back" in w for w in warnings(events))
    entries, _ = Journal(ws.path).read()
    assert unclosed(entries) == [] and [e["tag"] for e in entries if e["entry"] == "end"] == ["t0", "t2"]


async def test_a_complete_log_is_decided_as_usual(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    base, commit = dead_engine(ws)
    (ws.logs).mkdir()
    (ws.logs / "exp-0001-dead.log").write_text("attention: flex (no FA3 here)\nstep 00000 (100.0%) | loss: 3.9\r\n"
                                               + SUMMARY)
    await run_session(ws, ScriptedAgent([]), fast_config(tag="t2", max_experiments=1))
    rows = read_rows(ws.results_tsv)
    assert (rows[1].status, rows[1].val_bpb, rows[1].description) == ("keep", 1.0, "MATRIX_LR 0.04 -> 0.08 [recovered]")
    assert GitRepo(ws.path).branch_head("autoresearch/t0") == commit  # kept: the branch stays
    assert rows[2].commit == short(commit)  # the next session starts from the recovered keep
    record = read_records(ws.records_jsonl)[0]
    assert record["summary"]["num_steps"] == 5 and record["attention"] == "flex"  # its log's attention line


async def test_died_after_its_row_gets_no_second_row(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    base, commit = dead_engine(ws)
    append_row(ws.results_tsv, Row(short(commit), 1.0, 1.5, "keep", "MATRIX_LR 0.04 -> 0.08"))
    await run_session(ws, ScriptedAgent([]), fast_config(tag="t2", max_experiments=1))
    rows = read_rows(ws.results_tsv)
    assert [r.commit for r in rows].count(short(commit)) == 2  # its row, and t2's baseline on it
    assert rows[1].description == "MATRIX_LR 0.04 -> 0.08"
    record = read_records(ws.records_jsonl)[0]  # the record it never wrote
    assert (record["status"], record["interrupted"], record["commit"]) == ("keep", True, short(commit))


async def test_a_torn_row_of_the_interrupted_experiment_is_completed(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    base, commit = dead_engine(ws)
    with open(ws.results_tsv, "a") as handle:
        handle.write(f"{short(commit)}\t1.00")  # killed mid-write
    reason, events = await run_session(ws, ScriptedAgent([]), fast_config(tag="t2", max_experiments=1))
    assert reason == "max-experiments"
    assert [r.description for r in read_rows(ws.results_tsv)] == [
        "baseline", "MATRIX_LR 0.04 -> 0.08 [interrupted]", "baseline"]
    torn = [w for w in warnings(events) if "cut off" in w]
    assert len(torn) == 1 and "results.tsv:3:" in torn[0]
    saved = list((ws.path / ".cockpit").glob("torn-results-*.txt"))
    assert [p.read_text() for p in saved] == [f"{short(commit)}\t1.00"]


async def test_any_other_torn_line_refuses_to_start(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    append_row(ws.results_tsv, Row("a1b2c3d", 1.1, 1.5, "keep", "baseline"))
    with open(ws.results_tsv, "a") as handle:
        handle.write("b2c3d4e\t1.0\t1.5\tkeep\tMATRIX_LR 0.0")
    before = ws.results_tsv.read_bytes()
    reason, _ = await run_session(ws, ScriptedAgent([]), fast_config(max_experiments=1))
    assert reason.startswith(f"error: {ws.results_tsv}:3: the last line is incomplete")
    assert "complete or delete that line" in reason and ws.results_tsv.read_bytes() == before
    assert not GitRepo(ws.path).branch_exists("autoresearch/t1")


async def test_a_hand_commit_on_the_dead_branch_is_kept(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    base, commit = dead_engine(ws)
    (ws.path / "notes.md").write_text("mine\n")
    subprocess.run(["git", "add", "notes.md"], cwd=ws.path, check=True)
    subprocess.run(["git", "-c", "user.name=me", "-c", "user.email=me@x", "commit", "-qm", "notes"],
                   cwd=ws.path, check=True)
    head = GitRepo(ws.path).head_commit()
    reason, events = await run_session(ws, ScriptedAgent([]), fast_config(tag="t2", max_experiments=1))
    assert reason == "max-experiments"
    assert GitRepo(ws.path).branch_head("autoresearch/t0") == head
    assert any("commits cockpit did not make: left as it is" in w for w in warnings(events))


async def test_one_engine_per_workspace(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    lock = JournalLock(ws.path)
    lock.acquire()
    try:
        reason, _ = await run_session(ws, ScriptedAgent([]), fast_config())
    finally:
        lock.release()
    assert reason == f"error: another cockpit engine (pid {os.getpid()}) is running on this workspace; " \
                     "stop it first (one engine per workspace)"
    assert not ws.results_tsv.exists()


def test_journal_lines(tmp_path):
    journal = Journal(tmp_path)
    journal.append("open", id="a", tag="t", experiment=1)
    with open(journal.path, "a") as handle:
        handle.write('{"entry": "close", "id"')
    entries, note = journal.read()
    assert [e["entry"] for e in entries] == ["open"]
    assert "journal.jsonl:2: the last journal line was cut off mid-write; dropped it" in note
    assert unclosed(entries) == entries
    journal.cut_torn_tail()
    journal.append("close", id="a")
    assert unclosed(journal.read()[0]) == []
    journal.path.write_text('{"entry": "open"}\nnonsense\n{"entry": "end"}\n')
    with pytest.raises(JournalError, match=r"journal.jsonl:2: not a journal entry"):
        journal.read()


def test_a_failed_append_leaves_no_partial_line(tmp_path, monkeypatch):
    path = tmp_path / "results.tsv"
    append_row(path, Row("a1b2c3d", 1.1, 1.5, "keep", "baseline"))
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ledger.os, "fsync", full)
    with pytest.raises(OSError):
        append_row(path, Row("b2c3d4e", 1.0, 1.5, "keep", "x"))
    assert path.read_bytes() == before
    monkeypatch.undo()
    with pytest.raises(LedgerError, match=":3: the last line is incomplete"):
        path.write_bytes(before + b"b2c3d4e\t1.0")
        read_rows(path)


def test_redact(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-RECOGNISABLE-123")
    monkeypatch.setenv("HF_TOKEN", "hf_abc")  # shorter than 8: not a secret
    monkeypatch.setenv("MY_SERVICE_SECRET", "hunter2-and-more")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false-but-long-enough")
    assert "sk-test-RECOGNISABLE-123" in secret_values() and "hf_abc" not in secret_values()
    assert redact("key sk-test-RECOGNISABLE-123 and hunter2-and-more.") == f"key {REDACTED} and {REDACTED}."
    assert redact("sk-ant-api03-abcdefghijklmnop, task-1234567890abcdef") == f"{REDACTED}, task-1234567890abcdef"
    assert redact("TOKENIZERS_PARALLELISM=false-but-long-enough") == "TOKENIZERS_PARALLELISM=false-but-long-enough"


async def test_a_key_split_across_reads_never_reaches_the_log(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-RECOGNISABLE-123")
    code = ("import os, sys, time\nkey = os.environ['OPENAI_API_KEY']\n"
            "sys.stdout.write('key: ' + key[:9]); sys.stdout.flush(); time.sleep(0.3)\n"
            "sys.stdout.write(key[9:] + '\\rdone\\n'); sys.stdout.flush()\n")
    events: list = []
    # the run's environment is an allow-list (cockpit.rules.run_env): the key is given to it explicitly here,
    # as a key that reaches a run anyway (written into its code) would be printed
    run = Run([sys.executable, "-c", code], tmp_path, tmp_path / "x.log", emit=events.append,
              env={"OPENAI_API_KEY": "sk-test-RECOGNISABLE-123"})
    result = await run.wait()
    assert result.returncode == 0
    assert "RECOGNISABLE" not in (tmp_path / "x.log").read_text() + result.text + str(events)
    assert [e.text for e in events if isinstance(e, LogLine)] == [f"key: {REDACTED}", "done"]
