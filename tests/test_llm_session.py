"""A whole headless session through litellm against our loopback OpenAI server.

The real `cockpit` command runs 7 experiments on the fake train.py (val_bpb =
1 + |log2(MATRIX_LR / 0.08)| / 10) while the server answers with good edits,
malformed replies, an edit to prepare.py, 429/500 faults, a crash and its fix, a
401 (the engine pauses; SIGUSR1 resumes) and a reply slower than the timeout.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_support import DEPTH_COMMENT, LR_COMMENT, MODE_COMMENT, blocks, line, make_workspace, set_line
from openai_server import OpenAIServer, error, reply as answer, slow

from cockpit.store.records import read_records

from cockpit.store.results import read_rows
from cockpit.store.repo import GitRepo

pytestmark = pytest.mark.slow


SCRIPT = [
    # exp 1: a good edit -> keep (1.1 -> 1.0)
    answer(set_line("MATRIX_LR", "0.04", "0.08", LR_COMMENT, "double the Muon lr"), usage=(900, 40)),
    # exp 2: rate limited once, then an edit that changes nothing measured -> discard (equal)
    error(429),
    answer(set_line("DEPTH", "4", "5", DEPTH_COMMENT, "one more layer")),
    # exp 3: no block, then an edit of the fixed harness, then a good edit -> discard (1.1)
    answer("I think we should raise the learning rate further."),
    answer("Description: faster eval\n\nprepare.py\n```python\n<<<<<<< SEARCH\nTIME_BUDGET\n=======\nX\n"
           ">>>>>>> REPLACE\n```\n"),
    answer(set_line("MATRIX_LR", "0.08", "0.16", LR_COMMENT, "double the Muon lr again")),
    # exp 4: a 500, then an edit that crashes the run -> crash
    error(500),
    answer(set_line("MODE", '"ok"', '"crash"', MODE_COMMENT, "try the fused kernel path")),
    # exp 5: the fix attempt on top of the crashed train.py -> discard (1.019)
    answer(blocks("undo the kernel path, nudge the lr",
                  (line("MODE", '"crash"', MODE_COMMENT), line("MODE", '"ok"', MODE_COMMENT)),
                  (line("MATRIX_LR", "0.08", LR_COMMENT), line("MATRIX_LR", "0.07", LR_COMMENT)))),
    # exp 6: a bad key pauses the engine; after resume a reply slower than the timeout, then a good one
    error(401),
    slow(6.0),
    answer(set_line("MATRIX_LR", "0.08", "0.09", LR_COMMENT, "a touch more lr")),
]


def _toml(api_base: str) -> str:
    return (f'profile = "tiny"\n\n[agent]\nname = "litellm"\nmodel = "openai/test-model"\n'
            f'api_base = "{api_base}"\ntimeout_s = 2\nmax_retries = 2\n')


def _run_resuming_pauses(args: list[str], deadline_s: float) -> tuple[int, str]:
    """Run the cockpit command; send SIGUSR1 whenever it reports a pause. Returns (code, stdout)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    started = time.monotonic()
    try:
        for line in proc.stdout:
            lines.append(line)
            if "paused (resume: kill -USR1" in line:
                proc.send_signal(signal.SIGUSR1)
            assert time.monotonic() - started < deadline_s, "session took too long:\n" + "".join(lines)
        return proc.wait(timeout=30), "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_seven_experiments_through_litellm(tmp_path):
    with OpenAIServer(SCRIPT, lifetime_s=240) as server:
        ws = make_workspace(tmp_path / "ws", toml=_toml(server.api_base))
        prepare_before = (ws.path / "prepare.py").read_text()
        cockpit = Path(sys.executable).parent / "cockpit"
        code, out = _run_resuming_pauses(
            [str(cockpit), "--workspace", str(ws.path), "--headless", "--max-experiments", "7",
             "--budget", "1", "--tag", "llm", "--no-pipeline"], deadline_s=200)  # the script is one ordered talk
        requests = len(server.requests)

    assert code == 0, out[-3000:]
    assert requests == len(SCRIPT)

    rows = read_rows(ws.results_tsv)
    assert [r.status for r in rows] == ["keep", "keep", "discard", "discard", "crash", "discard", "discard"]
    assert [round(r.val_bpb, 6) for r in rows] == [1.1, 1.0, 1.0, 1.1, 0.0, 1.019265, 1.016993]
    assert "(fix 1/" in rows[5].description

    # Only kept commits on the branch; train.py at HEAD is the last keep and valid Python.
    repo = GitRepo(ws.path)
    assert [sha[:7] for sha, _ in repo.log()] == [rows[1].commit, rows[0].commit]
    train_py = (ws.path / "train.py").read_text()
    ast.parse(train_py)
    assert "MATRIX_LR = 0.08" in train_py and 'MODE = "ok"' in train_py
    assert (ws.path / "prepare.py").read_text() == prepare_before
    assert not repo.is_dirty()

    # One record per experiment, with the refused replies and the model's usage.
    records = [r for r in read_records(ws.path / "records.jsonl") if r["kind"] == "experiment"]
    assert [r["commit"] for r in records] == [r.commit for r in rows]
    refused = records[3]["errors"]
    assert len(refused) == 2 and "prepare.py" in refused[1]
    assert records[1]["agent_usage"]["prompt_tokens"] == 900
    assert all(r["agent_usage"] for r in records[1:])

    # The person saw each failure once, in plain words.
    assert "401" in out or "API key" in out
    assert "session ended (max-experiments): 7 experiments" in out


def test_pipelined_session_through_litellm(tmp_path):
    """The default, pipelined loop: the second proposal is asked while the first
    trains (the prompt names the run in flight) and is re-applied onto it once kept."""
    script = [answer(set_line("MATRIX_LR", "0.04", "0.08", LR_COMMENT, "double the Muon lr"), usage=(900, 40)),
              answer(set_line("DEPTH", "4", "5", DEPTH_COMMENT, "one more layer"), usage=(950, 30))]
    with OpenAIServer(script, lifetime_s=120) as server:
        ws = make_workspace(tmp_path / "ws", toml=_toml(server.api_base).replace("timeout_s = 2", "timeout_s = 60"))
        cockpit = Path(sys.executable).parent / "cockpit"
        code, out = _run_resuming_pauses(
            [str(cockpit), "--workspace", str(ws.path), "--headless", "--max-experiments", "3",
             "--budget", "1", "--tag", "piped"], deadline_s=100)
        prompts = [str(request) for request in server.requests]
    assert code == 0, out[-3000:]
    assert len(prompts) == 2
    assert "Training right now" in prompts[0] and "- baseline" in prompts[0]
    assert "Training right now" in prompts[1] and "- double the Muon lr" in prompts[1]
    assert "MATRIX_LR = 0.04" in prompts[1]  # asked against the best kept then: the baseline
    rows = read_rows(ws.results_tsv)
    assert [r.description for r in rows] == ["baseline", "double the Muon lr", "one more layer"]
    assert rows[1].status == "keep"
    records = [r for r in read_records(ws.records_jsonl) if r.get("kind") == "experiment"]
    assert records[2]["queued"]["rebased"] is True and records[2]["queued"]["asked_during"] == 1
    head = GitRepo(ws.path).show_file("HEAD" if rows[2].status == "keep" else rows[2].commit, "train.py")
    assert "MATRIX_LR = 0.08" in head and "DEPTH = 5" in head
