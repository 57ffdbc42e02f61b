"""An upstream autoresearch session continued by cockpit: results.tsv and autoresearch/<tag>, no records."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine_support import FAKES, LR_COMMENT

from cockpit.cli import main
from cockpit.store.results import read_rows
from cockpit.store.repo import GitRepo, init_repo

HEADER = "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"


def upstream_session(root: Path) -> tuple[Path, str]:
    """A checkout where upstream's agent ran session mar5: one discard, one keep (LR 0.06);
    the branch stands at that keep (upstream resets every discard). Returns (root, head)."""
    root.mkdir()
    (root / "prepare.py").write_text((FAKES / "upstream_prepare.py").read_text())
    (root / "train.py").write_text((FAKES / "train.py").read_text())
    (root / ".gitignore").write_text("logs/\nresults.tsv\n")
    init_repo(root, ["prepare.py", "train.py", ".gitignore"], "upstream")
    repo = GitRepo(root)
    repo.create_branch("autoresearch/mar5")
    source = (root / "train.py").read_text()
    (root / "train.py").write_text(source.replace(f"MATRIX_LR = 0.04  # {LR_COMMENT}", f"MATRIX_LR = 0.06  # {LR_COMMENT}"))
    head = repo.commit_file("train.py", "increase matrix LR to 0.06")
    (root / "results.tsv").write_text(
        HEADER + "baseline\t1.100000\t1.5\tkeep\tbaseline\n"
        "a1b2c3d\t1.200000\t1.5\tDISCARD\tdeeper model, \"depth 5\"\n"
        f"{head[:7]}\t1.041504\t1.5\tkeep\tincrease matrix LR to 0.06\n")
    return root, head


def test_the_cockpit_continues_an_upstream_session_from_its_best(tmp_path, monkeypatch, capsys):
    root, head = upstream_session(tmp_path / "autoresearch")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    before = (root / "results.tsv").read_text()

    offer = main(["--workspace", str(root), "--headless", "--max-experiments", "1", "--new-session",
                  "--run-command", "python train.py"])
    out = capsys.readouterr().out
    assert offer == 0, out
    assert "continue it from its best kept commit with --resume-upstream mar5" in out
    subprocess.run(["git", "checkout", "-q", "autoresearch/mar5"], cwd=root, check=True)
    with open(root / "results.tsv", "w") as handle:  # back to upstream's file alone
        handle.write(before)

    code = main(["--workspace", str(root), "--headless", "--resume-upstream", "mar5", "--max-experiments", "5",
                 "--run-command", "python train.py"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "resumed session mar5: 3 rows, best 1.041504" in out
    assert "[exp 0] step" not in out  # no baseline re-run
    assert (root / "results.tsv").read_text().startswith(before)  # the same file, appended to
    rows = read_rows(root / "results.tsv")
    assert len(rows) == 5
    repo = GitRepo(root)
    assert repo.current_branch() == "autoresearch/mar5"
    parents = subprocess.run(["git", "rev-list", "--parents", "-n", "1", rows[3].commit], cwd=root,
                             capture_output=True, text=True).stdout.split()
    assert parents[1] == head  # the first new experiment was built on upstream's best keep


UPSTREAM_TSV = Path(__file__).parent / "fixtures" / "upstream_results.tsv"


def test_a_120_row_upstream_night_is_continued_after_its_corrupt_line_is_named(tmp_path, monkeypatch, capsys):
    """The fixture's night (120 rows, KEEP/Keep/keep, a `baseline` commit cell, one corrupt line)
    on a checkout whose branch autoresearch/night stands at its best: the engine first names the
    corrupt line and changes nothing; with the line deleted it goes on from the branch head."""
    root, head = upstream_session(tmp_path / "autoresearch")
    subprocess.run(["git", "branch", "-q", "-m", "autoresearch/mar5", "autoresearch/night"], cwd=root, check=True)
    (root / "results.tsv").write_bytes(UPSTREAM_TSV.read_bytes())
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    args = ["--workspace", str(root), "--headless", "--resume-upstream", "night", "--max-experiments", "122",
            "--run-command", "python train.py"]
    before = (root / "results.tsv").read_bytes()

    assert main(args) != 0
    captured = capsys.readouterr()
    said = [line for line in captured.out.splitlines() if line.startswith("[error]")]
    assert len(said) == 1 and "results.tsv:60: val_bpb '0.99x1'" in said[0] and "Traceback" not in captured.err
    assert (root / "results.tsv").read_bytes() == before and not (root / "records.jsonl").exists()

    lines = before.decode().splitlines(keepends=True)
    fixed = "".join(line for line in lines if "0.99x1" not in line)
    (root / "results.tsv").write_text(fixed)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "resumed session night: 120 rows, best 0.960165" in out, out[-3000:]
    assert "[exp 0] step" not in out  # no baseline re-run
    assert (root / "results.tsv").read_text().startswith(fixed)  # appended to the same file
    rows = read_rows(root / "results.tsv")
    assert len(rows) == 122 and [r.status for r in rows[120:]] == ["discard", "discard"]  # 1.1 > 0.960165
    parents = subprocess.run(["git", "rev-list", "--parents", "-n", "1", rows[120].commit], cwd=root,
                             capture_output=True, text=True).stdout.split()
    assert parents[1] == head and GitRepo(root).head_commit() == head  # built on the night's best, back there
