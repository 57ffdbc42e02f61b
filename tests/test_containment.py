"""A run cannot reach the engine through git, nor edit outside the workspace.

The fake train.py is made hostile: it plants an executable ``.git/hooks/pre-commit``
(that writes a marker and sleeps 15 s, as the report found: the engine froze for the
hook's whole sleep, with its API key in the hook's environment), a
``core.fsmonitor`` command in ``.git/config`` and a ``.gitattributes`` diff driver.
None of them runs, the engine does not wait, and each is put back after the run with
one warning line. A symlinked train.py is refused with one line, at start and when a
run leaves one behind.
"""

from __future__ import annotations

import stat
import time

from engine_support import FAKES, ScriptedAgent, fast_config, lr, lr_to, make_workspace, of_type, run_session

from cockpit.commands import Stop

from cockpit.events import EngineMessage, PhaseChanged, RunStarted
from cockpit.store.results import read_rows
from cockpit.store.repo import GitRepo


def hostile(marker) -> str:
    plant = f'''
import os as _os, stat as _stat
_hook = ".git/hooks/pre-commit"
_os.makedirs(".git/hooks", exist_ok=True)
open(_hook, "w").write("#!/bin/sh\\necho hooked >> {marker}\\nsleep 15\\n")
_os.chmod(_hook, 0o755)
with open(".git/config", "a") as _config:
    _config.write("[core]\\n\\tfsmonitor = sh -c 'echo fsmonitor >> {marker}'\\n")
open(".gitattributes", "w").write("train.py diff=evil\\n")
'''
    return (FAKES / "train.py").read_text().replace('print("---")', plant + 'print("---")', 1)


async def test_hooks_config_and_attributes_planted_by_a_run_never_run_and_are_put_back(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    marker = tmp_path / "ran.txt"
    config_before = (ws.path / ".git" / "config").read_bytes()
    hooks_before = sorted(p.name for p in (ws.path / ".git" / "hooks").glob("*"))
    ws.train_py.write_text(hostile(marker))
    GitRepo(ws.path).commit_file("train.py", "hostile harness-free train.py")
    started = time.monotonic()
    agent = ScriptedAgent({1: lr("0.04", "0.08"), 2: lr_to("0.16")})  # by idea: see engine_support
    reason, events = await run_session(ws, agent, fast_config(max_experiments=3))
    took = time.monotonic() - started
    assert reason == "max-experiments"
    assert not marker.exists()  # no hook, no fsmonitor command ran
    assert took < 12  # a 15 s hook would have frozen the engine at the first commit
    assert (ws.path / ".git" / "config").read_bytes() == config_before
    assert sorted(p.name for p in (ws.path / ".git" / "hooks").glob("*")) == hooks_before
    assert not (ws.path / ".gitattributes").exists()
    warnings = [e.text for e in of_type(events, EngineMessage) if e.level == "warning" and "restored" in e.text]
    assert len(warnings) == len(of_type(events, RunStarted)) == 6  # one per run (3, and the noise floor's 3 re-runs)
    assert warnings[0] == ("#0: the run changed .git/config, .gitattributes, .git/hooks; restored (a run may not "
                           "change prepare.py or git's configuration, hooks or attributes)")
    assert [r.status for r in read_rows(ws.results_tsv)] == ["keep", "keep", "discard"]


def test_a_commit_never_runs_a_hook_already_there(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    marker = tmp_path / "ran.txt"
    hook = ws.path / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\necho hooked >> {marker}\nexit 1\n")  # exit 1 would also refuse the commit
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    ws.train_py.write_text(ws.train_py.read_text() + "\n# changed\n")
    repo = GitRepo(ws.path)
    commit = repo.commit_file("train.py", "a change")
    assert repo.head_commit() == commit and not marker.exists()


async def test_a_symlinked_train_py_is_refused_at_start_with_one_line(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    outside = tmp_path / "elsewhere.py"
    outside.write_text(ws.train_py.read_text())
    ws.train_py.unlink()
    ws.train_py.symlink_to(outside)
    reason, events = await run_session(ws, ScriptedAgent([]), fast_config())
    assert reason.startswith("error: ") and "is a symbolic link (to " in reason
    assert outside.read_text() == (FAKES / "train.py").read_text()  # nothing written through it
    assert not ws.results_tsv.exists() or read_rows(ws.results_tsv) == []


async def test_a_run_that_leaves_a_symlinked_train_py_pauses_the_engine(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    outside = tmp_path / "elsewhere.py"
    swap = f'''
import os as _os
open({str(outside)!r}, "w").write(open("train.py").read())
_os.remove("train.py"); _os.symlink({str(outside)!r}, "train.py")
'''
    ws.train_py.write_text((FAKES / "train.py").read_text().replace('print("---")', swap + 'print("---")', 1))
    GitRepo(ws.path).commit_file("train.py", "swapping train.py")
    paused = []

    def on_event(engine, event):
        if isinstance(event, PhaseChanged) and event.phase == "paused":
            paused.append(event.experiment)
            engine.send(Stop())

    reason, events = await run_session(ws, ScriptedAgent([lr("0.04", "0.08")]), fast_config(), on_event)
    assert reason == "stopped" and paused == [0]  # before the noise floor's first re-run of the baseline
    errors = [e.text for e in of_type(events, EngineMessage) if e.level == "error"]
    assert len(errors) == 1 and "train.py is a symbolic link" in errors[0]
    assert "MATRIX_LR = 0.04" in outside.read_text()  # the agent's edit never went through the link
