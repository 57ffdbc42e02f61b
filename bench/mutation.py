"""Mutation testing of the pure rules layer (cockpit/rules/) with mutmut.

One command, run by hand (not part of the pytest suite: a full run takes tens of
minutes on two cores)::

    .venv/bin/python bench/mutation.py            # copy the tree, run mutmut, print the score
    .venv/bin/python bench/mutation.py --tree /tmp/mut --survivors   # re-test the survivors only
    .venv/bin/python bench/mutation.py --tree /tmp/mut --report-only --write-docs docs/mutants.md

mutmut (pinned in the ``test`` extra; its settings are ``[tool.mutmut]`` in
pyproject.toml) mutates only cockpit/rules/ and runs only the fast unit tests that
exercise the rules. It runs in a copy of the working tree (``--tree``, default a
fresh temporary folder) so that the checkout stays untouched: mutmut writes its
``mutants/`` folder there. The script prints the score (killed / total, overall
and per module) and every surviving mutant, each with its diff and, when
bench/mutants_explained.toml explains it, the reason it cannot be killed.

Statuses: "killed" counts mutants a test failed on, plus timeouts (an infinite
loop the mutant made is caught); "survived" every test passed; "no tests" no
selected test calls the mutated function. The score is killed / total.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = Path("cockpit") / "rules"
EXPLAINED = ROOT / "bench" / "mutants_explained.toml"
SKIP = {".venv", ".git", "mutants", "workspace", "__pycache__", ".pytest_cache", ".hypothesis",
        ".import_linter_cache", "build", "snapshot_report.html"}

# mutmut's exit-code convention (mutmut.stats.status_by_exit_code, 3.8.1), reduced to the
# three outcomes the score needs.
KILLED_CODES = {1, 3, 36, 37, -24, 24, 152, 255, -11, -9}
SURVIVED_CODES = {0}
NO_TESTS_CODES = {5, 33}


def outcome(code) -> str:
    """"killed", "survived", "no tests" or "not run" for one mutant's mutmut exit code."""
    if code in KILLED_CODES:
        return "killed"
    if code in SURVIVED_CODES:
        return "survived"
    if code in NO_TESTS_CODES:
        return "no tests"
    return "not run"


def copy_tree(source: Path, tree: Path) -> None:
    """Copy the checkout ``source`` into ``tree`` (working-tree files, not .venv/.git/mutants);
    an existing ``tree/mutants`` (mutmut's cache) is kept, so a re-run is incremental."""
    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in SKIP or n.endswith(".egg-info")}

    tree.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name in SKIP or entry.name.endswith(".egg-info"):
            continue
        target = tree / entry.name
        if entry.is_dir():
            shutil.copytree(entry, target, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(entry, target)


def run_mutmut(tree: Path, max_children: int, names: list[str], log: Path) -> int:
    """``mutmut run`` in ``tree`` (only ``names`` when given), its output into ``log``; the exit status."""
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *names]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    with log.open("w") as out:
        return subprocess.call(command, cwd=tree, stdout=out, stderr=subprocess.STDOUT, env=env)


def keep_killed(tree: Path) -> None:
    """Make mutmut keep ``tree``'s verdicts although the test selection changed.

    mutmut resets every verdict when ``pytest_add_cli_args_test_selection`` changes (a new
    tests/test_rules_*.py listed). Adding tests cannot revive a killed mutant, so the killed
    verdicts stand; the mutants not killed are named to ``mutmut run`` and re-tested, with
    the new tests' coverage collected first. Dropping the stored config fingerprint is what
    tells mutmut there is nothing to invalidate."""
    stats = tree / "mutants" / "mutmut-stats.json"
    if stats.exists():
        data = json.loads(stats.read_text())
        data.pop("config_fingerprint", None)
        stats.write_text(json.dumps(data))


def load_results(tree: Path) -> dict[str, dict[str, str]]:
    """module name -> {mutant name -> outcome}, read from mutmut's ``.meta`` files in ``tree``."""
    results: dict[str, dict[str, str]] = {}
    for meta in sorted((tree / "mutants" / RULES).glob("*.py.meta")):
        module = meta.name[: -len(".py.meta")]
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if codes:
            results[module] = {name: outcome(code) for name, code in codes.items()}
    return results


def diffs(tree: Path, names: list[str]) -> dict[str, str]:
    """mutant name -> its diff (``mutmut show``), in one process."""
    if not names:
        return {}
    code = ("import json, sys\n"
            "from mutmut.mutation.diff_apply import get_diff_for_mutant\n"
            "print(json.dumps({n: get_diff_for_mutant(n) for n in json.loads(sys.stdin.read())}))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, input=json.dumps(names), capture_output=True,
                          text=True)
    if done.returncode != 0:
        return {n: "(diff unavailable: " + done.stderr.strip().splitlines()[-1] + ")" for n in names}
    return json.loads(done.stdout)


def explanations() -> dict[str, tuple[str, str]]:
    """mutant name -> (reason group, reason) from bench/mutants_explained.toml."""
    if not EXPLAINED.exists():
        return {}
    data = tomllib.loads(EXPLAINED.read_text())
    out = {}
    for group, entries in data.items():
        for name, reason in entries.items():
            out[name] = (group, reason)
    return out


def score_table(results: dict[str, dict[str, str]]) -> list[tuple[str, int, int, int, int, int]]:
    """(module, killed, survived, no tests, not run, total) per module, then "all"."""
    rows, totals = [], Counter()
    for module, outcomes in results.items():
        count = Counter(outcomes.values())
        row = (module, count["killed"], count["survived"], count["no tests"], count["not run"], len(outcomes))
        rows.append(row)
        totals.update(killed=row[1], survived=row[2], no_tests=row[3], not_run=row[4], total=row[5])
    rows.append(("all", totals["killed"], totals["survived"], totals["no_tests"], totals["not_run"],
                 totals["total"]))
    return rows


def percent(killed: int, total: int) -> str:
    """killed / total as a percentage with one decimal ("-" for no mutants)."""
    return f"{100.0 * killed / total:.1f}%" if total else "-"


def render(results: dict[str, dict[str, str]], shown: dict[str, str], why: dict[str, tuple[str, str]]) -> str:
    """The report: the score table, then the mutants not killed grouped by module, each with
    its reason when explained and its diff."""
    lines = ["| module | killed | survived | no tests | not run | total | score |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for module, killed, survived, no_tests, not_run, total in score_table(results):
        name = f"**{module}**" if module == "all" else f"{module}.py"
        lines.append(f"| {name} | {killed} | {survived} | {no_tests} | {not_run} | {total} | "
                     f"{percent(killed, total)} |")
    left = {m: sorted((n for n, o in outs.items() if o != "killed"), key=_order) for m, outs in results.items()}
    groups = Counter(why.get(n, ("unexplained", ""))[0] for names in left.values() for n in names)
    lines += ["", "Mutants not killed, by reason: " + (", ".join(f"{g} {c}" for g, c in sorted(groups.items()))
                                                        or "none")]
    for module, names in left.items():
        if not names:
            continue
        lines += ["", f"### {module}.py", ""]
        for name in names:
            group, reason = why.get(name, ("unexplained", ""))
            status = results[module][name]
            lines.append(f"- `{name}` ({status}; {group}){': ' + reason if reason else ''}")
            changed = [d for d in shown.get(name, "").splitlines()
                       if d.startswith(("-", "+")) and not d.startswith(("---", "+++"))]
            if changed:
                lines += ["", "  ```diff", *("  " + d for d in changed), "  ```"]
    return "\n".join(lines) + "\n"


def _order(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("__mutmut_")
    return stem, int(number) if number.isdigit() else 0


def main(argv: list[str] | None = None) -> int:
    """Run the mutation test (or only report on an earlier run) and print the score."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to copy (default: this one)")
    parser.add_argument("--tree", type=Path, help="work folder (default: a new temporary one); "
                                                  "an existing one is reused, incrementally")
    parser.add_argument("--max-children", type=int, default=1, help="mutmut worker processes (default 1)")
    parser.add_argument("--survivors", action="store_true", help="re-test only the mutants the last run in "
                                                                 "--tree did not kill (after adding tests)")
    parser.add_argument("--report-only", action="store_true", help="no run: report on --tree's last run")
    parser.add_argument("--write-docs", type=Path, help="also write the report as markdown to this file")
    parser.add_argument("--fail-under", type=float, default=0.0, help="exit 1 when the score is below this %%")
    args = parser.parse_args(argv)

    tree = args.tree or Path(tempfile.mkdtemp(prefix="cockpit-mutation-"))
    if (args.report_only or args.survivors) and not (tree / "mutants").is_dir():
        parser.error(f"{tree} holds no earlier mutmut run")
    started = time.monotonic()
    if not args.report_only:
        copy_tree(args.source.resolve(), tree)
        names: list[str] = []
        if args.survivors:
            names = [n for outs in load_results(tree).values() for n, o in outs.items() if o != "killed"]
            if not names:
                print("no surviving mutants to re-test")
                return 0
            keep_killed(tree)
        log = tree / "mutmut.log"
        print(f"mutmut run in {tree} (log: {log}) ...", flush=True)
        status = run_mutmut(tree, args.max_children, names, log)
        if status != 0:
            print(log.read_text()[-4000:], file=sys.stderr)
            print(f"mutmut run failed (exit {status})", file=sys.stderr)
            return status
        print(f"mutmut run took {time.monotonic() - started:.0f} s", flush=True)

    results = load_results(tree)
    why = explanations()
    left = [n for outs in results.values() for n, o in outs.items() if o != "killed"]
    report = render(results, diffs(tree, left), why)
    print(report)
    if args.write_docs:
        header = ("# Surviving mutants of cockpit/rules\n\nGenerated by `bench/mutation.py --write-docs` "
                  "(see [testing.md](testing.md#mutation-testing)); reasons from "
                  "`bench/mutants_explained.toml`.\n\n")
        args.write_docs.write_text(header + report)
    killed, total = score_table(results)[-1][1], score_table(results)[-1][-1]
    print(f"score: {killed}/{total} killed = {percent(killed, total)}")
    unexplained = [n for n in left if n not in why]
    if unexplained:
        print(f"{len(unexplained)} mutants not killed and not explained in {EXPLAINED.relative_to(ROOT)}")
    return 1 if total and 100.0 * killed / total < args.fail_under else 0


if __name__ == "__main__":
    sys.exit(main())
