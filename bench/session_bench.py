"""Shared pieces of the session benches (duty_cycle.py, overhead.py): a real
workspace made by ``cockpit init`` with bench/fixed_run.py as its train.py, a
headless session run through the real ``cockpit`` command, and the figures
read back from its records.jsonl (cockpit.rules.timekeeping's accounts).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

BENCH = Path(__file__).resolve().parent
COCKPIT = [sys.executable, "-m", "cockpit.cli"]


def make_workspace(root: Path, agent_toml: str = "", profile: str = "tiny") -> Path:
    """``cockpit init root --profile profile``, then train.py replaced by the
    fixed-length run (committed) and ``agent_toml`` appended to cockpit.toml."""
    subprocess.run([*COCKPIT, "init", str(root), "--profile", profile], check=True, capture_output=True)
    (root / "train.py").write_text((BENCH / "fixed_run.py").read_text())
    if agent_toml:
        toml = (root / "cockpit.toml").read_text()
        head, _, _ = toml.partition("[agent]")
        (root / "cockpit.toml").write_text(head + agent_toml)
    for argv in (["git", "add", "-A"], ["git", "commit", "-q", "-m", "bench: fixed-length train.py"]):
        subprocess.run(argv, cwd=root, check=True, capture_output=True)
    return root


def run_headless(root: Path, *flags: str, env: Optional[dict] = None) -> float:
    """Run ``cockpit --workspace root --headless flags`` to its end; returns its
    wall time in seconds. Raises CalledProcessError (with its output) on failure."""
    started = time.monotonic()
    done = subprocess.run([*COCKPIT, "--workspace", str(root), "--headless", *flags],
                          env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
    return time.monotonic() - started


def experiments(root: Path) -> list[dict]:
    """The experiment records of the workspace's records.jsonl, in order."""
    lines = (root / "records.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == "experiment"]


def table(records: list[dict]) -> str:
    """Per experiment: where its seconds went (cockpit.rules.timekeeping keys)."""
    keys = ("propose_s", "wait_model_s", "gap_s", "overhead_s", "git_s", "startup_s", "training_s", "eval_s")
    lines = ["  #  status   " + "  ".join(f"{k[:-2]:>10}" for k in keys)]
    for r in records:
        t = r["timings"]
        lines.append(f"{r['experiment']:>3}  {r['status']:<8} " + "  ".join(f"{t.get(k, 0.0):>10.3f}" for k in keys))
    return "\n".join(lines)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
