"""Which clock should a shared CPU count the time budget on? sigma of the baseline, four ways.

Runs the shipped substrate (prepare.py + the profile's train.py) N times
in each of four conditions, interleaved round-robin so that drift in the machine's
load falls on all four alike:

    wall, quiet     the budget in wall seconds, nothing else running
    wall, busy      the same with one busy-loop process (one core's worth of load)
    cpu, quiet      the budget in the training process's CPU seconds per thread
    cpu, busy       (prepare.budget_clock(): time.process_time() / torch threads)

and prints, per condition, val_bpb's mean and sample standard deviation (sigma,
the noise floor the ratchet would measure), the steps trained and the wall
seconds a run took; per clock, how far the load shifts the mean and sigma of the
quiet and busy runs pooled (load that comes and goes between runs, as on a shared
machine). The question it answers (issue 15): does counting CPU seconds cut sigma
under load by half or more? Run it alone on an otherwise idle machine:

    python bench/budget_clock.py --profile cpu --runs 5 --json docs/budget_clock.json

``--conditions cpu:quiet,cpu:busy`` runs a subset; ``--env NAME=VALUE`` sets a variable
for every run (e.g. ``OMP_WAIT_POLICY=PASSIVE``: OpenMP threads that sleep at a barrier
instead of spinning, so a thread waiting for one the busy loop displaced burns no CPU
seconds).

A cpu-profile run takes 72-130 s (60 s budget + start-up + eval; longer on the CPU clock
under load): 4 x 5 runs took 34 min here.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from substrate.hparams import render_train_py  # noqa: E402
SUMMARY_LINE = re.compile(r"^(\w+):\s+(\S+)\s*$", re.MULTILINE)


def run_once(workdir: Path, profile: str, clock: str, busy: bool, extra_env: dict) -> dict:
    """One training run; returns its summary block (strings) plus wall seconds."""
    env = {**os.environ, **extra_env, "COCKPIT_PROFILE": profile, "COCKPIT_BUDGET_CLOCK": clock,
           "PYTHONUNBUFFERED": "1"}
    loader = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-u", "train.py"], cwd=workdir, env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
    finally:
        if loader is not None:
            loader.kill()
            loader.wait()
    if done.returncode != 0:
        raise SystemExit(f"train.py failed ({clock}, busy={busy}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    summary = dict(SUMMARY_LINE.findall(done.stdout.split("\n---\n")[-1]))
    return {**summary, "wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu", choices=["cpu", "tiny"])
    parser.add_argument("--runs", type=int, default=5, help="runs per condition (at least 2 for a sigma)")
    parser.add_argument("--json", type=Path, help="write every run and the table here")
    parser.add_argument("--conditions", default="wall:quiet,wall:busy,cpu:quiet,cpu:busy",
                        help="CLOCK:LOAD pairs, comma-separated (default: all four)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="set for every run (e.g. OMP_WAIT_POLICY=PASSIVE); repeatable")
    args = parser.parse_args()
    conditions = [(c.split(":")[0], c.split(":")[1] == "busy") for c in args.conditions.split(",")]
    extra_env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="budget-clock-") as tmp:
        work = Path(tmp)
        shutil.copy(ROOT / "substrate" / "prepare.py", work / "prepare.py")
        (work / "train.py").write_text(render_train_py(args.profile))  # as `cockpit init --profile` writes it
        env = {**os.environ, "COCKPIT_PROFILE": args.profile}
        subprocess.run([sys.executable, "prepare.py"], cwd=work, env=env, check=True, capture_output=True)
        runs = {f"{clock}, {'busy' if busy else 'quiet'}": [] for clock, busy in conditions}
        for i in range(args.runs):
            for clock, busy in conditions:
                key = f"{clock}, {'busy' if busy else 'quiet'}"
                result = run_once(work, args.profile, clock, busy, extra_env)
                runs[key].append(result)
                print(f"run {i + 1}/{args.runs} {key:<12} val_bpb {result['val_bpb']} steps {result['num_steps']:>4} "
                      f"training_s {result['training_seconds']:>5} wall_s {result['wall_s']:>5}", flush=True)
    table = {}
    print(f"\nprofile {args.profile}, {args.runs} runs per condition" + (f", {extra_env}" if extra_env else ""))
    print(f"{'condition':<12} {'mean':>8} {'sigma':>8} {'steps':>11} {'wall s':>7}")
    for key, rows in runs.items():
        bpb = [float(r["val_bpb"]) for r in rows]
        steps = [int(r["num_steps"]) for r in rows]
        table[key] = {"mean": statistics.fmean(bpb), "sigma": statistics.stdev(bpb),
                      "steps_min": min(steps), "steps_max": max(steps),
                      "wall_s": statistics.median(r["wall_s"] for r in rows)}
        t = table[key]
        print(f"{key:<12} {t['mean']:8.4f} {t['sigma']:8.4f} {t['steps_min']:>5}-{t['steps_max']:<5} {t['wall_s']:7.1f}")
    for clock in ("wall", "cpu"):
        quiet, busy = runs.get(clock + ", quiet"), runs.get(clock + ", busy")
        if quiet and busy:  # load that comes and goes between runs: the two conditions pooled
            pooled = statistics.stdev(float(r["val_bpb"]) for r in quiet + busy)
            shift = table[clock + ", busy"]["mean"] - table[clock + ", quiet"]["mean"]
            table[clock + ", pooled"] = {"sigma": pooled, "shift": shift}
            print(f"{clock}: sigma busy / quiet = {table[clock + ', busy']['sigma'] / table[clock + ', quiet']['sigma']:.2f}; "
                  f"load shifts the mean by {shift:+.4f}; quiet and busy pooled: sigma {pooled:.4f}")
    if "cpu, busy" in table and "wall, busy" in table:
        print(f"under load: sigma cpu / wall = {table['cpu, busy']['sigma'] / table['wall, busy']['sigma']:.2f}; "
              f"pooled: {table['cpu, pooled']['sigma'] / table['wall, pooled']['sigma']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"profile": args.profile, "env": extra_env, "runs": runs, "table": table},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
