"""Scaling of one session across GPUs: experiments per hour and each GPU's idle share.

Real headless sessions through the `cockpit` command on a tiny workspace whose train.py
is bench/fixed_run.py (every run sleeps exactly ``--budget`` seconds: no compute, so
logical GPUs on a 2-core machine scale as real ones would), the litellm agent on
bench/loopback_model.py (127.0.0.1, ``--model-s`` seconds per answer, a random untried
move each time, as a model at a temperature). N = 1 is today's single-GPU path (no Ray);
N > 1 is ``--gpus N`` on a local Ray with N logical GPUs (COCKPIT_RAY_NUM_GPUS), and
``--cluster`` adds the same N on a simulated 2-node cluster (ray.cluster_utils.Cluster,
N/2 GPUs each, joined with --ray-address). Ray must touch only the loopback, so the
bench runs inside a network namespace of its own (it re-runs itself through
scripts/in_netns.sh when it is not in one).

Per N: rows after the baseline, the window from the baseline's end to the last row,
experiments/hour over that window against the ideal N x 3600 / budget, each GPU's
idle share (1 - its runs' wall seconds / the window), duplicates refused (records.jsonl
kind "fleet"), rows lost (experiment numbers handed out with no row and no record).

    scripts/in_netns.sh .venv/bin/python bench/scaling.py [--ns 1,2,4,8] [--rounds 2] [--budget 20] [--model-s 5] [--cluster]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from loopback_model import AGENT, LoopbackModel  # noqa: E402
from session_bench import make_workspace, run_headless  # noqa: E402


def in_own_netns() -> bool:
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":")[0].strip() for line in lines) == ["lo"]


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def figures(root: Path, n: int, budget: float) -> dict:
    """The session's figures from its records.jsonl (module docstring)."""
    records = [json.loads(line) for line in (root / "records.jsonl").read_text().splitlines()]
    runs = [r for r in records if r["kind"] == "experiment"]
    numbered = {r["experiment"] for r in records if r["kind"] in ("experiment", "superseded")}
    start = seconds(runs[0]["ended"])  # the baseline's row: the fleet's window opens
    window = max(seconds(r["ended"]) for r in runs) - start
    busy: dict = {}
    for r in runs[1:]:
        busy[r.get("worker") or "local"] = busy.get(r.get("worker") or "local", 0.0) + r["timings"]["wall_s"]
    fleet = [r for r in records if r["kind"] == "fleet"]
    per_hour = (len(runs) - 1) / window * 3600 if window > 0 else 0.0
    return {"n": n, "rows": len(runs), "window_s": window, "per_hour": per_hour, "ideal": n * 3600 / budget,
            "idle": sorted(max(0.0, 1 - b / window) for b in busy.values()) if window > 0 else [],
            "gpus_used": len(busy), "refused": fleet[-1]["duplicates_refused"] if fleet else 0,
            "lost": len(set(range(max(numbered) + 1)) - numbered)}


def session(root: Path, n: int, args, address: str = "") -> dict:
    with LoopbackModel(delay_s=args.model_s, spread=True) as model:
        make_workspace(root, AGENT.format(api_base=model.api_base))
        flags = ["--max-experiments", str(1 + args.rounds * n), "--budget", str(args.budget), "--tag", "scale",
                 "--noise-runs", "0", *(["--gpus", str(n)] if n > 1 else []),
                 *(["--ray-address", address] if address else [])]
        env = {"OPENAI_API_KEY": "bench-key-not-secret", "COCKPIT_RAY_NUM_GPUS": str(n),
               "COCKPIT_RUN_ROOT": str(root.parent / f"runs-{root.name}")}
        try:
            wall = run_headless(root, *flags, env=env)
        except subprocess.CalledProcessError as exc:
            sys.exit(f"scaling: the N = {n} session failed:\n{exc.stdout[-3000:]}\n{exc.stderr[-3000:]}")
    return {**figures(root, n, args.budget), "process_wall_s": wall, "calls": model.calls}


def cluster_session(root: Path, n: int, args) -> dict:
    """``session`` on a 2-node ray.cluster_utils.Cluster of n/2 logical GPUs each."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_gpus": n // 2, "num_cpus": 2})
    cluster.add_node(num_gpus=n - n // 2, num_cpus=2)
    try:
        return session(root, n, args, address=cluster.address)
    finally:
        cluster.shutdown()


def line(f: dict, where: str) -> str:
    idle = ", ".join(f"{x:.3f}" for x in f["idle"])
    return (f"| {where} | {f['n']} | {f['rows'] - 1} | {f['window_s']:.0f} | {f['per_hour']:.1f} | {f['ideal']:.0f} | "
            f"{f['per_hour'] / f['ideal']:.3f} | {max(f['idle']) if f['idle'] else float('nan'):.3f} ({idle}) | "
            f"{f['refused']} | {f['lost']} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ns", default="1,2,4,8", help="GPU counts (default 1,2,4,8)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="experiments per GPU after the baseline (default 2: at N = 8 the loopback model has ~22 moves)")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds each run trains (default 20)")
    parser.add_argument("--model-s", type=float, default=5.0, help="seconds the model thinks (default 5)")
    parser.add_argument("--cluster", action="store_true", help="also the largest N on a 2-node simulated cluster")
    args = parser.parse_args()
    if not in_own_netns():
        script = BENCH.parent / "scripts" / "in_netns.sh"
        return subprocess.call([str(script), sys.executable, *sys.argv])
    os.environ.pop("RAY_ADDRESS", None)
    ns = [int(x) for x in args.ns.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="cockpit-scale-") as tmp:
        for n in ns:
            f = session(Path(tmp) / f"n{n}", n, args)
            rows.append(line(f, "1 node" if n > 1 else "1 node, no Ray"))
            print(rows[-1], f"({f['calls']} model calls, process {f['process_wall_s']:.0f} s)", flush=True)
        if args.cluster:
            f = cluster_session(Path(tmp) / "cluster", max(ns), args)
            rows.append(line(f, "2 nodes"))
            print(rows[-1], flush=True)
    print(f"\n{args.budget:g} s runs, {args.model_s:g} s model, {args.rounds} experiments per GPU after the baseline")
    print("| where | N | runs | window s | exp/h | ideal | of ideal | idle max (per GPU) | refused | lost |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
