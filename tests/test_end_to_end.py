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

from cockpit.store.records import read_records

from cockpit.store.results import read_rows
from cockpit.store.repo import GitRepo

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
        elif row.status == "discard":  # or better, but by less than the noise floor's threshold
            assert row.val_bpb >= best or row.description.endswith(" [within noise]")

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

    # The noise floor (3 baseline re-runs) and the holdout score of every kept commit, written by the
    # real harness aside from the output
    everything = read_records(ws / "records.jsonl")
    floor = [r for r in everything if r["kind"] == "noise-floor"]
    assert len(floor) == 1 and len(floor[0]["runs"]) == 4 and len(floor[0]["holdout_runs"]) == 4
    assert all(r["holdout_bpb"] > 0 for r in records if r["status"] == "keep")
    assert "holdout" not in (ws / records[0]["log_path"]).read_text()

    # The session report: markdown with the figures, and a PNG of the staircase
    report = _cockpit(["report", "--workspace", str(ws)], env, timeout=120)
    assert report.returncode == 0, report.stderr
    text = (ws / "report-e2e.md").read_text()
    assert f"{rows[0].val_bpb:.6f}" in text and "noise" in text.lower() and "holdout" in text.lower()
    assert "not measured in this session" not in text
    assert (ws / "report-e2e-staircase.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
