"""The cockpit command: init, a headless session on fakes, errors as exit 1 + one line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from engine_support import FAKES, make_workspace, processes_in

from cockpit.cli import main
from cockpit.cli.session import default_tag
from cockpit.store.results import read_rows
from cockpit.store.repo import GitRepo
from cockpit.store.settings import AgentSettings
from cockpit.store.workspace import load_workspace


def _cockpit() -> list[str]:
    script = Path(sys.executable).parent / "cockpit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cockpit.cli"]


def test_init_then_headless_session(tmp_path, capsys):
    ws = tmp_path / "ws"
    assert main(["init", str(ws), "--profile", "tiny", "--no-prepare"]) == 0
    for name in ("prepare.py", "train.py", "program.md", "cockpit.toml", ".gitignore"):
        assert (ws / name).is_file()
    settings = load_workspace(ws)
    assert (settings.profile, settings.agent, settings.settings.fix_attempts) == ("tiny", AgentSettings(), 2)
    assert "# model = " in (ws / "cockpit.toml").read_text()
    repo = GitRepo(ws)
    assert repo.current_branch() == "main" and len(repo.log()) == 1 and not repo.is_dirty()
    assert "results.tsv" in (ws / ".gitignore").read_text()
    assert "start a session with" in capsys.readouterr().out

    for name in ("train.py", "prepare.py"):  # fakes: no torch, under a second per run
        (ws / name).write_text((FAKES / name).read_text())
        repo.commit_file(name, f"fake {name}")
    done = subprocess.run(_cockpit() + ["--workspace", str(ws), "--headless", "--max-experiments", "3",
                                        "--budget", "1", "--tag", "clitest"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = read_rows(ws / "results.tsv")
    assert len(rows) == 3 and rows[0].description == "baseline" and rows[0].status == "keep"
    assert all(" -> " in r.description for r in rows[1:])
    assert "session ended (max-experiments): 3 experiments" in done.stdout
    assert "commit" in done.stdout and "val_bpb" in done.stdout

    assert main(["--workspace", str(ws), "--headless", "--tag", "clitest", "--max-experiments", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cockpit: branch autoresearch/clitest already exists") and "\n" not in err


def test_errors_exit_1_with_one_line(tmp_path, capsys):
    assert main(["--workspace", str(tmp_path), "--headless"]) == 1
    err = capsys.readouterr().err.strip()
    assert "is not a cockpit workspace" in err and "\n" not in err
    (tmp_path / "x").write_text("occupied")
    assert main(["init", str(tmp_path), "--no-prepare"]) == 1
    assert "is not empty" in capsys.readouterr().err


def test_help_lists_every_flag():
    done = subprocess.run(_cockpit() + ["--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for flag in ("--workspace", "--headless", "--max-experiments", "--budget", "--tag", "--agent", "--model",
                 "--api-base", "--program", "--run-command", "--approve", "init", "--profile", "--no-prepare"):
        assert flag in done.stdout
    from datetime import datetime
    assert default_tag(datetime(2026, 11, 21, 23, 37)) == "nov21-2337"


def test_engine_modules_do_not_import_ui_torch_or_litellm():
    code = (
        "import sys\n"
        "import cockpit.engine.ratchet, cockpit.cli, cockpit.serve.headless, cockpit.training.runner, cockpit.store.repo, cockpit.store.ledger\n"
        "import cockpit.rules.edits, cockpit.rules.summary, cockpit.store.workspace, cockpit.engine.proposing, cockpit.agents.offline\n"
        "import cockpit.serve.daemon, cockpit.serve.attach, cockpit.serve.wire, cockpit.store.rundir\n"
        "print(sorted(m for m in ('textual', 'torch', 'litellm') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_sigterm_stops_a_headless_session_cleanly(tmp_path):
    source = (FAKES / "train.py").read_text().replace('MODE = "ok"', 'MODE = "hang_child"')
    ws = make_workspace(tmp_path / "ws", train_py=source)
    proc = subprocess.Popen(_cockpit() + ["--workspace", str(ws.path), "--headless", "--budget", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "step " not in (proc.stdout.readline() or "step "):
        pass
    assert len(processes_in(ws.path)) == 2  # the training and its grandchild
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "session ended (stopped)" in out
    assert [(r.status, r.description) for r in read_rows(ws.results_tsv)] == [("crash", "baseline [stopped]")]
    time.sleep(0.2)
    assert processes_in(ws.path) == []
