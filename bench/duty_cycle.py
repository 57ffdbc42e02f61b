"""Duty cycle of a session: the share of the session's wall time the GPU trains.

A real headless session (the `cockpit` command, the litellm agent, the real
HTTP path) on a workspace whose train.py is bench/fixed_run.py: every run
trains exactly ``--budget`` seconds. The model is bench/loopback_model.py on
127.0.0.1, thinking ``--model-s`` seconds (default 30) per answer. Duty cycle
= sum of training seconds / session wall time from the baseline's start to
the last row (1 - TimeAccounted's idle_share). Upstream's serial loop would
lose the model's 30 s on every experiment; pipelining (the default) hides it
behind the run. ``--compare`` runs the same session with --no-pipeline too.
The noise floor's baseline re-runs are off (``--noise-runs 0``): they are
training, and would flatter the figure.

    .venv/bin/python bench/duty_cycle.py [--budget 45] [--experiments 6] [--model-s 30] [--compare]

Prints the per-experiment account, then
``duty cycle: D (pipelined, M s model, B s runs; idle: ...)``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback_model import AGENT, LoopbackModel  # noqa: E402
from session_bench import experiments, make_workspace, run_headless, table  # noqa: E402


def session(root: Path, budget: float, count: int, model_s: float, pipeline: bool) -> dict:
    """Run one session; returns the last record's session figures plus the records."""
    with LoopbackModel(delay_s=model_s) as model:
        make_workspace(root, AGENT.format(api_base=model.api_base))
        flags = ["--max-experiments", str(count), "--budget", str(budget), "--tag", "bench", "--noise-runs", "0"]
        wall = run_headless(root, *flags, *([] if pipeline else ["--no-pipeline"]),
                            env={"OPENAI_API_KEY": "bench-key-not-secret"})
    records = experiments(root)
    return {**records[-1]["session"], "records": records, "process_wall_s": wall, "calls": model.calls}


def report(name: str, figures: dict, model_s: float, budget: float) -> str:
    idle = {k: figures[k] for k in ("wait_model_s", "wait_human_s", "paused_s", "overhead_s", "startup_s", "eval_s")}
    parts = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in idle.items())
    return (f"duty cycle: {1 - figures['idle_share']:.3f} ({name}, {model_s:g} s model, {budget:g} s runs; "
            f"{figures['experiments']} runs in {figures['wall_s']:.0f} s; "
            f"{figures['experiments_per_hour']:.1f} of an ideal {figures['ideal_per_hour']:.1f} exp/h; idle: {parts})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=45.0, help="seconds each run trains (default 45)")
    parser.add_argument("--experiments", type=int, default=6, help="results rows, baseline included (default 6)")
    parser.add_argument("--model-s", type=float, default=30.0, help="seconds the model thinks (default 30)")
    parser.add_argument("--compare", action="store_true", help="also run the serial loop (--no-pipeline)")
    args = parser.parse_args()
    lines = []
    with tempfile.TemporaryDirectory(prefix="cockpit-duty-") as tmp:
        for name, pipeline in (("pipelined", True), ("serial", False))[: 2 if args.compare else 1]:
            figures = session(Path(tmp) / name, args.budget, args.experiments, args.model_s, pipeline)
            print(f"{name}: {figures['calls']} model calls, process wall {figures['process_wall_s']:.0f} s")
            print(table(figures["records"]))
            lines.append(report(name, figures, args.model_s, args.budget))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
