"""Decided experiments per hour with the noise floor measured, then remembered.

Two real headless sessions of the shipped substrate (``cockpit init --profile P``,
the offline agent, the default ratchet) on one workspace, one after the other:

    measured    a first session (tag floor-a): baseline + ``noise_runs`` re-runs
                of it buy the noise floor, then N experiments
    remembered  a second session (tag floor-b) from the same base commit: same
                harness, same train.py, same device, so it takes session a's
                floor (cockpit.engine.noise_memory) and goes straight on

Decided experiments per hour = the session's rows / its wall time from the
baseline's start to the last row (cockpit.rules.timekeeping, the figure the
status bar shows), against the ideal 3600 / budget. Prints both and their ratio.

    python bench/floor_reuse.py --profile tiny --experiments 10 [--noise-runs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from session_bench import COCKPIT, run_headless  # noqa: E402


def session_summary(root: Path, tag: str) -> dict:
    """Session ``tag``'s sums at its last row (the ``session`` field of its last
    experiment record in records.jsonl: cockpit.rules.timekeeping)."""
    records = [json.loads(line) for line in (root / "records.jsonl").read_text().splitlines()]
    rows = [r for r in records if r.get("kind") == "experiment" and r.get("tag") == tag]
    if not rows:
        raise SystemExit(f"no experiment of {tag} in {root / 'records.jsonl'}")
    return rows[-1]["session"]


def run_counts(root: Path, tag: str) -> str:
    """Session ``tag``'s trained runs: rows (experiment records) and re-runs by label."""
    records = [json.loads(line) for line in (root / "records.jsonl").read_text().splitlines()]
    rows = sum(r.get("kind") == "experiment" and r.get("tag") == tag for r in records)
    reruns = [r.get("label", "?").split(":")[0] for r in records if r.get("kind") == "rerun" and r.get("tag") == tag]
    labels = ", ".join(f"{reruns.count(x)} {x}" for x in sorted(set(reruns))) or "none"
    return f"{rows} rows + {len(reruns)} re-runs ({labels})"


def floor_record(root: Path, tag: str) -> dict:
    """Session ``tag``'s noise-floor record."""
    records = [json.loads(line) for line in (root / "records.jsonl").read_text().splitlines()]
    return [r for r in records if r.get("kind") == "noise-floor" and r.get("tag") == tag][-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="tiny", choices=["tiny", "cpu"])
    parser.add_argument("--experiments", type=int, default=10, help="experiments per session after the baseline")
    parser.add_argument("--noise-runs", type=int, default=3, help="re-runs of the baseline in the first session")
    parser.add_argument("--keep", type=Path, help="make the workspace here and leave it (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="floor-reuse-") as tmp:
        root = args.keep or Path(tmp) / "ws"
        subprocess.run([*COCKPIT, "init", str(root), "--profile", args.profile], check=True, capture_output=True)
        base = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
        rows = {}
        for tag, flags in (("floor-a", ["--noise-runs", str(args.noise_runs)]), ("floor-b", [])):
            subprocess.run(["git", "checkout", "-q", base], cwd=root, check=True)
            wall = run_headless(root, "--tag", tag, "--max-experiments", str(args.experiments), *flags)
            t, floor = session_summary(root, tag), floor_record(root, tag)
            rows[tag] = t
            origin = f"remembered from {floor['remembered_from']}" if floor.get("remembered_from") else "measured"
            print(f"{tag}: floor sigma {floor['sigma']:.4f} over {len(floor['runs'])} runs ({origin}); "
                  f"{t['experiments']} decided in {t['wall_s']:.0f} s ({wall:.0f} s with start-up): "
                  f"{t['experiments_per_hour']:.1f} exp/h of an ideal {t['ideal_per_hour']:.1f} "
                  f"= {t['experiments_per_hour'] / t['ideal_per_hour']:.2f}; {run_counts(root, tag)}", flush=True)
    a, b = rows["floor-a"], rows["floor-b"]
    print(f"remembered / measured: {b['experiments_per_hour'] / a['experiments_per_hour']:.2f}x decided experiments per hour")


if __name__ == "__main__":
    main()
