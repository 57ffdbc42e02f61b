"""bench/gpu_check.sh, CI-sized on this CPU (tiny profile, 3 s budgets), so that the script a
lent GPU runs cannot rot; and its local corpus preparing the h100 profile with no network."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent  # the venv running the tests (make test: .venv)


@pytest.mark.slow
def test_gpu_check_runs_every_step_on_the_cpu_and_prints_its_figures(tmp_path):
    env = {**os.environ, "PROFILE": "tiny", "BUDGET": "3", "EXP_BUDGET": "3", "EXPERIMENTS": "3",
           "VENV": str(VENV), "OUT": str(tmp_path / "out")}
    run = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = [l for l in run.stdout.splitlines() if l.startswith("gpu_check: ")]
    text = "\n".join(lines)
    assert re.search(r"^gpu_check: python 3\.\d+\.\d+, torch \S+, CUDA build None$", text, re.M)
    assert "gpu_check: device cpu (torch sees no CUDA device)" in lines
    assert "gpu_check: run: attention: sdpa-masked (device cpu)" in lines
    assert re.search(r"^gpu_check: run: compile/warm-up \d+\.\ds \(steps 0-1\), then \d+ steps", text, re.M)
    assert re.search(r"^gpu_check: run: [\d,]+ tokens/s \(median step\), MFU [\d.]+%, peak memory [\d.]+ GiB, "
                     r"val_bpb \d\.\d{6}, training \d", text, re.M)
    rows = [l for l in lines if re.match(r"gpu_check: session: +\d+ +(keep|discard|crash) ", l)]
    assert [int(l.split()[2]) for l in rows] == [0, 1, 2, 3]  # the baseline and 3 experiments
    assert re.search(r"^gpu_check: session: 4 runs, idle share [\d.]+%", text, re.M)
    assert re.search(r"^gpu_check: total \d+s", text, re.M)


def test_gpu_check_stops_in_one_line_without_a_venv(tmp_path):
    run = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "VENV": str(tmp_path / "none"), "OUT": str(tmp_path / "out")})
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"gpu_check: no {tmp_path / 'none'} with cockpit installed here: run make install first"]


def test_the_local_corpus_prepares_the_h100_profile_without_a_network(tmp_path):
    env = {**os.environ, "COCKPIT_PROFILE": "h100", "COCKPIT_CACHE_DIR": str(tmp_path / "cache"),
           "COCKPIT_DATA_URL": f"file://{tmp_path / 'climbmix'}"}
    made = subprocess.run([sys.executable, "bench/local_climbmix.py", str(tmp_path / "climbmix")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (tmp_path / "climbmix").iterdir()) == [
        *(f"shard_{i:05d}.parquet" for i in range(10)), "shard_06541.parquet", "shard_06542.parquet"]
    prep = subprocess.run([sys.executable, str(ROOT / "substrate" / "prepare.py")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert prep.returncode == 0, prep.stdout + prep.stderr
    assert "data: climbmix, 10 training shards" in prep.stdout
    assert "attention kernel: not fetched, no CUDA here" in prep.stdout
    stamp = (tmp_path / "cache" / "h100" / "tokenizer" / "prepared.txt").read_text()
    assert stamp.endswith("; token bytes counted as upstream")


@pytest.mark.slow
def test_an_h100_session_without_cuda_crashes_its_baseline_at_once_saying_why(tmp_path):
    """The fail-fast exit as a user meets it: an h100 workspace on this CPU, a session."""
    env = {**os.environ, "COCKPIT_CACHE_DIR": str(tmp_path / "cache"),
           "COCKPIT_DATA_URL": f"file://{tmp_path / 'climbmix'}"}
    env.pop("COCKPIT_PROFILE", None)
    subprocess.run([sys.executable, "bench/local_climbmix.py", str(tmp_path / "climbmix")], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=120)
    cockpit = str(VENV / "bin" / "cockpit")
    init = subprocess.run([cockpit, "init", str(tmp_path / "ws"), "--profile", "h100", "--no-prepare"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0 and "train.py will stop at once" in init.stderr
    run = subprocess.run([cockpit, "--workspace", str(tmp_path / "ws"), "--headless", "--noise-runs", "0",
                          "--max-experiments", "2"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith(
        "cockpit: the baseline run crashed (exit 1): FAIL: profile h100 needs CUDA: torch ")
    rows = (tmp_path / "ws" / "results.tsv").read_text().splitlines()[1:]
    assert len(rows) == 1
    commit, val, mem, status, description = rows[0].split("\t")
    assert status == "crash" and description.startswith("baseline [profile h100 needs CUDA: torch ")
    assert "CPU-only build" in description
