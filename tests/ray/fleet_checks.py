"""What every fleet test checks on the files a user reads (results.tsv, records.jsonl, git):
one row per experiment that trained, every experiment number handed out accounted for, the
ratchet invariant, and no train.py trained twice."""

import subprocess

from cockpit.rules.dedupe import fingerprint
from cockpit.store.records import read_records
from cockpit.store.results import read_rows


def git(ws, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=ws.path, capture_output=True, text=True, check=True).stdout


def check_ledger(ws, tag: str) -> list[dict]:
    """Assert the invariants of session ``tag`` in ``ws``; returns its experiment records."""
    rows = read_rows(ws.results_tsv)
    records = [r for r in read_records(ws.records_jsonl) if r.get("tag") == tag]
    experiments = [r for r in records if r["kind"] == "experiment"]
    superseded = [r for r in records if r["kind"] == "superseded"]
    assert len(rows) == len(experiments)  # one row per experiment that trained
    assert [row.description for row in rows] == [r["description"] for r in experiments]
    numbers = sorted(r["experiment"] for r in experiments)
    assert numbers == list(range(len(numbers)))  # every number handed out trained (a set-aside's is reused)
    # a set-aside number is handed out again, or was left when the session ended
    assert all(r["experiment"] in numbers or r["experiment"] > numbers[-1] for r in superseded)
    keeps = [r for r in experiments if r["status"] == "keep"]
    assert keeps[0]["experiment"] == 0
    for before, keep in zip(keeps, keeps[1:]):  # each keep built on the one before and beat it
        assert keep["parent"] == before["commit"] == keep["incumbent_at_decision"]
        assert keep["val_bpb"] < before["val_bpb"]
    line = git(ws, "log", "--format=%h", "--first-parent", f"autoresearch/{tag}").split()
    assert [c[:7] for c in line[:len(keeps) - 1]] == [k["commit"][:7] for k in reversed(keeps[1:])]
    trained = [git(ws, "show", f"{r['commit']}:train.py") for r in experiments]
    assert len({fingerprint(text) for text in trained}) == len(trained)  # no train.py trained twice
    for r in experiments:
        if r["description"].endswith("[stale]"):  # judged against a parent no longer the incumbent
            assert r["status"] == "discard" and r["parent"] != r["incumbent_at_decision"]
    return experiments
