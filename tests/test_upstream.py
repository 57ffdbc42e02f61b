"""Upstream-layout repositories: detected by layout, TIME_BUDGET read with ast,
no prepare step, --run-command, results kept out of git."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine_support import FAKES

from cockpit.cli import main
from cockpit.cli.session import run_command
from cockpit.engine.context import program_source
from cockpit.store.records import read_records
from cockpit.store.results import read_rows
from cockpit.store.repo import GitRepo, init_repo
from cockpit.store.upstream import read_time_budget
from cockpit.store.workspace import load_workspace


def _upstream_repo(root: Path) -> Path:
    """A git checkout like karpathy/autoresearch: prepare.py, train.py, no cockpit.toml."""
    root.mkdir()
    (root / "prepare.py").write_text((FAKES / "upstream_prepare.py").read_text())
    (root / "train.py").write_text((FAKES / "train.py").read_text())  # prints the real summary block
    (root / ".gitignore").write_text("logs/\n")
    init_repo(root, ["prepare.py", "train.py", ".gitignore"], "upstream")
    return root


def test_time_budget_is_read_without_importing(tmp_path):
    prepare = tmp_path / "prepare.py"
    cases = {"import torch\nTIME_BUDGET = 300\n": 300.0, "TIME_BUDGET: int = 5 * 60\n": 300.0,
             "TIME_BUDGET = 5\nTIME_BUDGET = 2 ** 3\n": 8.0, "TIME_BUDGET = int(os.environ['X'])\n": 300.0,
             "def broken(:\n": 300.0, "X = 1\n": 300.0, "TIME_BUDGET = 1e400\n": 300.0,
             "TIME_BUDGET = 1e400 * 0\n": 300.0, "TIME_BUDGET = 10.0 ** 400\n": 300.0}
    for source, expected in cases.items():
        prepare.write_text(source)
        assert read_time_budget(prepare)[0] == expected, source
    assert "not imported" in read_time_budget(FAKES / "upstream_prepare.py")[1]
    assert read_time_budget(FAKES / "upstream_prepare.py")[0] == 5.0


def test_upstream_checkout_runs_three_experiments(tmp_path, monkeypatch, capsys):
    repo = _upstream_repo(tmp_path / "autoresearch")
    ws = load_workspace(repo)
    assert (ws.layout, ws.profile, ws.agent.name) == ("upstream", "upstream", "offline")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    code = main(["--workspace", str(repo), "--headless", "--max-experiments", "3", "--tag", "up1",
                 "--run-command", "python train.py"])
    out = capsys.readouterr().out
    assert code == 0, out

    rows = read_rows(repo / "results.tsv")
    assert len(rows) == 3 and rows[0].status == "keep" and rows[0].description == "baseline"
    records = [r for r in read_records(repo / "records.jsonl") if r["kind"] == "experiment"]
    assert {r["budget_s"] for r in records} == {5.0} and records[1]["program"] == "programs/default.md"
    assert "TIME_BUDGET 5s read from prepare.py (not imported)" in out
    assert "cockpit runs no prepare step" in out and not (repo / "logs" / "prepare.log").exists()
    assert (repo / ".git" / "info" / "exclude").read_text().splitlines()[-3:] == [
        "results.tsv", "records.jsonl", ".cockpit/"]
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert status == ""  # results, records and logs stay out of git
    assert GitRepo(repo).current_branch() == "autoresearch/up1"


def test_upstream_default_command_is_uv_run(tmp_path):
    ws = load_workspace(_upstream_repo(tmp_path / "fork"))
    assert run_command(None, ws) == ("uv", "run", "train.py")
    assert program_source(None, ws.path, upstream=True).label == "programs/default.md"
    (ws.path / "program.md").write_text("# my program\n")
    assert program_source(None, ws.path, upstream=True).label == "program.md"
