"""The whole product on the real substrate: init, prepare, train, score, ratchet.

No fakes: `cockpit init --profile tiny` writes the real prepare.py and train.py,
prepares the embedded corpus, and a headless session trains real models on CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cockpit.ledger import read_records, read_rows
from cockpit.repo import GitRepo

pytestmark = pytest.mark.slow


def _cockpit(args: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "cockpit"
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_headless_session_on_real_substrate(tmp_path):
    env = {**os.environ, "COCKPIT_CACHE_DIR": str(tmp_path / "cache")}
    ws = tmp_path / "ws"

    init = _cockpit(["init", str(ws), "--profile", "tiny"], env, timeout=300)
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "cache" / "tiny" / "data" / "shard_val.parquet").is_file()

    run = _cockpit(["--workspace", str(ws), "--headless", "--max-experiments", "3", "--budget", "4",
                    "--tag", "e2e"], env, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]

    rows = read_rows(ws / "results.tsv")
    assert len(rows) == 3
    assert rows[0].description == "baseline" and rows[0].status == "keep"
    for row in rows:
        assert row.status in ("keep", "discard", "crash")
        assert (row.val_bpb > 0) == (row.status != "crash")

    # The ratchet: val_bpb of keeps strictly decreases; discards were no better than the best.
    best = None
    for row in rows:
        if row.status == "keep":
            assert best is None or row.val_bpb < best
            best = row.val_bpb
        elif row.status == "discard":
            assert row.val_bpb >= best

    # The branch holds exactly the kept commits, newest first; the baseline is the
    # workspace's own first commit (train.py unchanged).
    repo = GitRepo(ws)
    assert repo.current_branch() == "autoresearch/e2e"
    branch = [sha[:7] for sha, _ in repo.log()]
    assert branch == [r.commit for r in reversed(rows) if r.status == "keep"]

    # Upstream's tools read results.tsv with pandas.
    frame = pd.read_csv(ws / "results.tsv", sep="\t")
    assert list(frame.columns) == ["commit", "val_bpb", "memory_gb", "status", "description"]
    assert len(frame) == 3

    # Every experiment keeps its log and a side record with timings.
    records = [r for r in read_records(ws / "records.jsonl") if r["kind"] == "experiment"]
    assert [r["commit"] for r in records] == [r.commit for r in rows]
    for record in records:
        assert (ws / record["log_path"]).is_file()
        assert record["budget_s"] == 4
        assert record["timings"]["training_s"] > 0
    assert "val_bpb:" in (ws / records[0]["log_path"]).read_text()
