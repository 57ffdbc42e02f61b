"""Does running train.py without a network change the CPU baseline? (--no-network)

Makes a cpu-profile workspace (``cockpit init``, data from the cockpit cache),
then runs its baseline train.py ``--pairs`` times with the network and as many
times under the prefix ``cockpit.training.no_network.network_prefix()`` picks (a network
namespace of its own), alternating which goes first in each pair so that load
drift on a shared machine hits both alike. Each run gets the same
COCKPIT_TIME_BUDGET (``--budget`` seconds) and the cockpit's allow-listed
environment.

Prints per run: val_bpb, steps, tokens/s (the median of the step lines'
tok/sec), and per arm the median val_bpb and tokens/s, and the ratio
without / with the network. On CPU the number of steps that fit the budget
moves with the machine's load, so val_bpb moves with it; the prefix itself
adds one exec of ``unshare`` (a few ms, before start-up).

    .venv/bin/python bench/no_network.py [--pairs 3] [--budget 20] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cockpit.training.no_network import network_prefix  # noqa: E402
from cockpit.rules.run_env import run_environment  # noqa: E402
from cockpit.rules.summary import parse_step_line, parse_summary  # noqa: E402


def one_run(workspace: Path, prefix: list[str], budget: float) -> dict:
    env = run_environment({"COCKPIT_TIME_BUDGET": repr(float(budget))})
    done = subprocess.run([*prefix, sys.executable, "-u", "train.py"], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=budget * 3 + 120)
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    text = done.stdout.replace("\r", "\n")
    rates = [step["tok_per_s"] for step in map(parse_step_line, text.splitlines())
             if step is not None and step.get("tok_per_s") and step["progress_pct"] > 0]
    summary = parse_summary(text)
    return {"val_bpb": summary["val_bpb"], "steps": summary["num_steps"],
            "tok_s": statistics.median(rates) if rates else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--budget", type=float, default=20.0)
    parser.add_argument("--workspace", type=Path, help="an existing cpu-profile workspace (default: a new one)")
    args = parser.parse_args()
    prefix = network_prefix()
    workspace = args.workspace
    if workspace is None:
        workspace = Path(tempfile.mkdtemp(prefix="cockpit-no-network-")) / "ws"
        from cockpit.cli import main as cockpit_main
        if cockpit_main(["init", str(workspace), "--profile", "cpu"]) != 0:
            raise SystemExit("cockpit init failed")
    print(f"prefix: {' '.join(prefix)}; budget {args.budget:g}s; {args.pairs} pairs; workspace {workspace}")
    arms: dict[str, list[dict]] = {"network": [], "no network": []}
    for pair in range(args.pairs):
        order = [("network", []), ("no network", prefix)]
        for name, used in (order if pair % 2 == 0 else order[::-1]):
            result = one_run(workspace, used, args.budget)
            arms[name].append(result)
            print(f"  pair {pair + 1} {name:<10} val_bpb {result['val_bpb']:.6f}  steps {result['steps']:>4}  "
                  f"tokens/s {result['tok_s']:,.0f}", flush=True)
    medians = {name: (statistics.median(r["val_bpb"] for r in runs), statistics.median(r["tok_s"] for r in runs))
               for name, runs in arms.items()}
    for name, (bpb, rate) in medians.items():
        print(f"{name:<10} median val_bpb {bpb:.6f}  median tokens/s {rate:,.0f}")
    (bpb_on, rate_on), (bpb_off, rate_off) = medians["network"], medians["no network"]
    print(f"without / with the network: val_bpb {bpb_off - bpb_on:+.6f}, tokens/s x{rate_off / rate_on:.3f}")


if __name__ == "__main__":
    main()
