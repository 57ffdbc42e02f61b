"""Search methods on one task: coordinate (the offline agent), random, TPE and CMA-ES.

Each (method, seed) is one headless session of the real ``cockpit`` command on its
own copy of one ``cockpit init --profile P`` workspace (the shipped train.py with
its ``# search:`` ranges), the same ratchet for all: the noise floor measured at the
start (``--noise-runs``), keep iff a run beats the incumbent by the noise rule,
confirming re-runs as configured. A session stops after ``--experiments`` rows
after the baseline (``--max-experiments`` = experiments + 1).

Printed per method and seed, read back from records.jsonl: the final incumbent's
val_bpb (the last keep), the holdout shard's score of that keep
(cockpit.rules.holdout), sigma of the session's noise floor, the runs trained
(re-runs included), and the experiments until the incumbent reached the
coordinate agent's final best of the same seed ("-" when it never did). Writes
``--out``/search.json (every session's best-so-far curve) and search.png
(best-so-far val_bpb per method, one line per seed).

Usage: python bench/search.py [--profile tiny] [--experiments 30] [--seeds 0,1]
       [--methods coordinate,random,tpe,cmaes] [--noise-runs 3] [--out bench/out]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from session_bench import COCKPIT, experiments, run_headless  # noqa: E402

METHODS = {  # method -> the flags that choose its agent
    "coordinate": ["--agent", "offline"],
    "random": ["--agent", "optuna", "--sampler", "random"],
    "tpe": ["--agent", "optuna", "--sampler", "tpe"],
    "cmaes": ["--agent", "optuna", "--sampler", "cmaes"],
}


def pristine(root: Path, profile: str) -> Path:
    """``cockpit init root --profile profile`` (prepares the data cache once)."""
    subprocess.run([*COCKPIT, "init", str(root), "--profile", profile], check=True, capture_output=True)
    return root


def records(root: Path) -> list[dict]:
    """Every record of root's records.jsonl."""
    return [json.loads(line) for line in (root / "records.jsonl").read_text().splitlines() if line.strip()]


def incumbent_curve(rows: list[dict]) -> list[float]:
    """val_bpb of the incumbent after each row (the last keep at or before it)."""
    curve, best = [], float("nan")
    for r in rows:
        if r["status"] == "keep" and r.get("val_bpb") is not None:
            best = r["val_bpb"]
        curve.append(best)
    return curve


def run_one(base: Path, method: str, seed: int, n: int, noise_runs: int, work: Path) -> dict:
    """One session of ``method`` with ``seed`` on a copy of ``base``; its figures."""
    root = work / f"{method}-s{seed}"
    shutil.copytree(base, root, symlinks=True)
    toml = root / "cockpit.toml"
    text = toml.read_text()
    if "# seed = 0 " not in text:
        raise SystemExit(f"{toml}: no '# seed = 0' line to set the seed on (cockpit init's template changed)")
    toml.write_text(text.replace("# seed = 0 ", f"seed = {seed}  "))
    wall = run_headless(root, *METHODS[method], "--max-experiments", str(n + 1),
                        "--noise-runs", str(noise_runs), "--tag", f"{method}-s{seed}")
    rows = experiments(root)
    every = records(root)
    floor = next((r for r in every if r.get("kind") == "noise-floor"), {})
    keeps = [r for r in rows if r["status"] == "keep"]
    runs = len(rows) + sum(1 for r in every if r.get("kind") == "rerun")
    return {"method": method, "seed": seed, "wall_s": round(wall, 1), "curve": incumbent_curve(rows),
            "best": keeps[-1]["val_bpb"], "holdout": keeps[-1].get("holdout_bpb"),
            "sigma": floor.get("sigma"), "rows": len(rows), "runs": runs,
            "crashes": sum(r["status"] == "crash" for r in rows), "keeps": len(keeps) - 1}


def reached(curve: list[float], target: float) -> str:
    """Experiments (rows after the baseline) until ``curve`` is at or below ``target``."""
    for i, v in enumerate(curve):
        if v <= target + 1e-12:
            return str(i)
    return "-"


def fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def report(results: list[dict]) -> str:
    """The markdown table of ``results`` (per method and seed, then per-method medians)."""
    coord = {r["seed"]: r["best"] for r in results if r["method"] == "coordinate"}
    lines = ["| method | seed | best val_bpb | holdout | sigma | keeps | crashes | runs | to coordinate's best |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        target = coord.get(r["seed"])
        lines.append(f"| {r['method']} | {r['seed']} | {r['best']:.4f} | {fmt(r['holdout'])} | {fmt(r['sigma'])} | "
                     f"{r['keeps']} | {r['crashes']} | {r['runs']} | "
                     f"{reached(r['curve'], target) if target is not None else '-'} |")
    lines.append("")
    lines.append("| method | median best | median holdout |")
    lines.append("|---|---|---|")
    for m in dict.fromkeys(r["method"] for r in results):
        mine = [r for r in results if r["method"] == m]
        hold = [r["holdout"] for r in mine if r["holdout"] is not None]
        lines.append(f"| {m} | {statistics.median(r['best'] for r in mine):.4f} | "
                     f"{fmt(statistics.median(hold) if hold else None)} |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    """Best-so-far val_bpb per method (one line per seed) as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colours = dict(zip(METHODS, ("tab:gray", "tab:green", "tab:blue", "tab:red")))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for r in results:
        ax.step(range(len(r["curve"])), r["curve"], where="post", color=colours[r["method"]],
                label=r["method"] if r["seed"] == min(x["seed"] for x in results) else None, alpha=0.8)
    ax.set_xlabel("experiment (rows after the baseline)")
    ax.set_ylabel("incumbent val_bpb")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="tiny")
    p.add_argument("--experiments", type=int, default=30)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--noise-runs", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("bench/out"))
    a = p.parse_args(argv)
    methods = a.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        p.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    seeds = [int(s) for s in a.seeds.split(",")]
    a.out.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="cockpit-search-") as tmp:
        base = pristine(Path(tmp) / "base", a.profile)
        for seed in seeds:
            for m in methods:
                started = time.monotonic()
                r = run_one(base, m, seed, a.experiments, a.noise_runs, Path(tmp))
                results.append(r)
                print(f"{m} seed {seed}: best {r['best']:.4f}, holdout {fmt(r['holdout'])}, "
                      f"{r['runs']} runs in {time.monotonic() - started:.0f} s", flush=True)
                (a.out / "search.json").write_text(json.dumps(results, indent=1))
    print(report(results))
    plot(results, a.out / "search.png")
    print(f"wrote {a.out / 'search.json'} and {a.out / 'search.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
