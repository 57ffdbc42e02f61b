"""Create and load a workspace: the git repository a session runs in.

Layout (docs/CONTRACTS.md): tracked ``prepare.py`` (the fixed harness),
``train.py`` (the editable file), ``program.md`` (the human's instructions),
``cockpit.toml`` (settings, see cockpit.store.settings) and ``.gitignore``; untracked
``results.tsv``, ``records.jsonl`` and ``logs/``. A git checkout in upstream
layout (prepare.py and train.py, no cockpit.toml) loads too, with default
settings and ``layout == "upstream"`` (see cockpit.store.upstream).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Optional

from git.exc import GitError

from cockpit.store.repo import init_repo
from cockpit.rules.budget_clock import WALL, BudgetClock
from cockpit.rules.run_env import run_environment
from cockpit.store.settings import (PROFILE_NAMES, AgentSettings, Settings, SettingsError, parse_settings,
                                    render_template)
from cockpit.store.upstream import is_upstream_layout, read_time_budget

PROFILES = PROFILE_NAMES  # cockpit.store.settings holds the one list
CONFIG_FILE = "cockpit.toml"
GITIGNORE = "results.tsv\nrecords.jsonl\nlogs/\n__pycache__/\n.cockpit/\noptuna/\n"
TRACKED = ("prepare.py", "train.py", "program.md", CONFIG_FILE, ".gitignore")


class WorkspaceError(RuntimeError):
    """Not a workspace, a refused init, or a harness that cannot be used; one clear line."""


@dataclass(frozen=True)
class Workspace:
    """A workspace: its root, its cockpit.toml's settings, its layout."""

    path: Path
    """Workspace root (absolute)."""
    settings: Settings = field(default_factory=Settings)
    """cockpit.toml's top-level settings (cockpit.store.settings declares them all)."""
    agent: AgentSettings = field(default_factory=AgentSettings)
    """The ``[agent]`` table: agent name and model options (CLI flags override them)."""
    layout: str = "cockpit"
    """"cockpit" (made by ``cockpit init``) or "upstream" (a karpathy/autoresearch checkout)."""

    @property
    def profile(self) -> str:
        """Harness profile name ("cpu", "h100", "tiny"; "upstream" for an upstream checkout)."""
        return self.settings.profile

    @property
    def train_py(self) -> Path:
        return self.path / "train.py"

    @property
    def prepare_py(self) -> Path:
        return self.path / "prepare.py"

    @property
    def program_md(self) -> Path:
        return self.path / "program.md"

    @property
    def results_tsv(self) -> Path:
        return self.path / "results.tsv"

    @property
    def records_jsonl(self) -> Path:
        return self.path / "records.jsonl"

    @property
    def logs(self) -> Path:
        return self.path / "logs"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes ("" when it does not exist)."""
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _resource_text(package: str, name: str) -> str:
    try:
        return resources.files(package).joinpath(name).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError):
        raise WorkspaceError(f"{package}/{name} is missing from this installation of cockpit") from None


def render_train_py(profile: str) -> str:
    """train.py for ``profile``: ``substrate.hparams.render_train_py`` when available,
    else the plain ``substrate/train.py``. Raises WorkspaceError when neither exists."""
    try:
        from substrate.hparams import render_train_py as render
    except ModuleNotFoundError as exc:
        if exc.name != "substrate.hparams":
            raise
        return _resource_text("substrate", "train.py")
    return render(profile)


def _check_target(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise WorkspaceError(f"{path} exists and is not a directory")
    try:
        if path.is_dir() and any(path.iterdir()):
            raise WorkspaceError(f"{path} is not empty; choose a new directory for the workspace")
    except OSError as exc:
        raise WorkspaceError(f"cannot create workspace {path}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """Why an OSError or a git failure happened, in one line (e.g. "Permission denied")."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(getattr(exc, "stderr", "") or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[-1].strip()


def _missing_top(path: Path) -> Optional[Path]:
    """The highest directory of ``path`` (itself included) that does not exist yet: what
    ``mkdir(parents=True)`` will create first; None when ``path`` exists."""
    top = None
    while not path.exists() and path != path.parent:
        top, path = path, path.parent
    return top


def _undo_init(root: Path, created: Optional[Path], names) -> None:
    """Remove what a failed init made (best effort): the directories it created, else
    (a directory that was empty) the files it wrote and .git."""
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
        return
    for name in names:
        try:
            (root / name).unlink(missing_ok=True)
        except OSError:
            pass
    shutil.rmtree(root / ".git", ignore_errors=True)


def init_workspace(path: str | os.PathLike, profile: str = "cpu", agent: str = "offline") -> Workspace:
    """Create a workspace at ``path`` (new or empty directory) for harness ``profile``.

    Writes prepare.py, train.py, program.md, cockpit.toml and .gitignore, runs
    ``git init`` (branch main) and commits them. Does not prepare data (see
    ``prepare_in_terminal``). Raises WorkspaceError on an unknown profile, a
    non-empty directory, or missing substrate files; and, with one line
    ``cannot create workspace PATH: REASON``, when the directory or a file cannot
    be written (a read-only location, a parent that is a file, a full disk) or
    git fails; what it had made is then removed, so the same command works once
    the cause is fixed.
    """
    if profile not in PROFILES:
        raise WorkspaceError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    try:
        root = Path(path).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise WorkspaceError(f"cannot create workspace {path}: {_reason(exc)}") from None
    _check_target(root)
    files = {
        "prepare.py": _resource_text("substrate", "prepare.py"),
        "train.py": render_train_py(profile),
        "program.md": _resource_text("programs", "default.md"),
        CONFIG_FILE: render_config(profile, agent),
        ".gitignore": GITIGNORE,
    }
    created = _missing_top(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (root / name).write_text(text, encoding="utf-8")
        init_repo(root, TRACKED, f"cockpit workspace (profile {profile})")
    except (OSError, GitError) as exc:
        _undo_init(root, created, files)
        raise WorkspaceError(f"cannot create workspace {root}: {_reason(exc)}") from None
    return load_workspace(root)


def render_config(profile: str, agent: str = "offline") -> str:
    """The cockpit.toml ``cockpit init`` writes (cockpit.store.settings.render_template)."""
    return render_template(profile, agent)


def load_workspace(path: str | os.PathLike) -> Workspace:
    """Read the workspace at ``path``: a cockpit workspace, or a git checkout in
    upstream layout (default settings). Raises WorkspaceError when it is neither
    (no cockpit.toml, train.py, prepare.py or .git) or its cockpit.toml is invalid."""
    root = Path(path).resolve()
    if is_upstream_layout(root):
        return Workspace(root, Settings(profile="upstream"), layout="upstream")
    missing = [n for n in (CONFIG_FILE, "train.py", "prepare.py", ".git") if not (root / n).exists()]
    if missing:
        raise WorkspaceError(
            f"{root} is not a cockpit workspace (missing {', '.join(missing)}); "
            "create one with `cockpit init DIR`"
        )
    try:
        data = tomllib.loads((root / CONFIG_FILE).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise WorkspaceError(f"{root / CONFIG_FILE}: {exc}") from None
    return _settings(root, data)


def _settings(root: Path, data: dict) -> Workspace:
    try:
        settings, agent = parse_settings(data, str(root / CONFIG_FILE))
    except SettingsError as exc:
        raise WorkspaceError(str(exc)) from None
    return Workspace(root, settings, agent)


def prepare_command() -> list[str]:
    """The argv that prepares data and tokenizer (run in the workspace)."""
    return [sys.executable, "-u", "prepare.py"]


def prepare_in_terminal(workspace: Workspace) -> int:
    """Run prepare.py for ``cockpit init``; returns its exit status.

    On a terminal the child inherits it, so rich progress bars render (logs/prepare.log
    then only notes that); otherwise the output is copied to stdout and the log.
    Raises WorkspaceError (one line) when logs/ or the log cannot be written (a full
    disk) or prepare.py cannot be started.
    """
    try:
        return _prepare_in_terminal(workspace)
    except OSError as exc:
        raise WorkspaceError(f"prepare.py could not run in {workspace.path}: {_reason(exc)}; run "
                             "`python prepare.py` there once that is fixed") from None


def _prepare_in_terminal(workspace: Workspace) -> int:
    workspace.logs.mkdir(exist_ok=True)
    log_path = workspace.logs / "prepare.log"
    if sys.stdout.isatty():
        log_path.write_text("prepare.py ran on the terminal (cockpit init); output not captured\n")
        return subprocess.call(prepare_command(), cwd=workspace.path, env=run_environment())
    with open(log_path, "wb") as log, subprocess.Popen(
        prepare_command(), cwd=workspace.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, env=run_environment(),
    ) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(65536):
            log.write(chunk)
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
        return proc.wait()


def harness_budget(workspace: Workspace, timeout_s: float = 300.0,
                   env: Optional[dict] = None) -> tuple[float, BudgetClock, str]:
    """(seconds, clock, note): the harness's TIME_BUDGET and the clock it is counted on
    (prepare.py's BUDGET_CLOCK and BUDGET_THREADS; wall seconds when it names none). A
    cockpit workspace's prepare.py is imported in a child Python with ``env`` on top of
    the run environment (cockpit itself never imports torch); an upstream one is read
    with ``ast`` (never imported; 300 s when absent, the wall clock). Raises
    WorkspaceError when the child fails or says something else."""
    if workspace.layout == "upstream":
        seconds, note = read_time_budget(workspace.prepare_py)
        return seconds, WALL, note
    code = ("import json, prepare; print(json.dumps([float(prepare.TIME_BUDGET), "
            "getattr(prepare, 'BUDGET_CLOCK', 'wall'), getattr(prepare, 'BUDGET_THREADS', 1)]))")
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=workspace.path, capture_output=True,
                              text=True, timeout=timeout_s, stdin=subprocess.DEVNULL, env=run_environment(env))
    except subprocess.TimeoutExpired:
        raise WorkspaceError(f"reading TIME_BUDGET from prepare.py took over {timeout_s:.0f}s") from None
    lines = done.stdout.strip().splitlines()
    try:
        if done.returncode == 0 and lines:
            seconds, kind, threads = json.loads(lines[-1])
            return float(seconds), BudgetClock(kind, threads), "TIME_BUDGET read from prepare.py"
    except (ValueError, TypeError) as exc:
        raise WorkspaceError(f"prepare.py's TIME_BUDGET, BUDGET_CLOCK or BUDGET_THREADS: {exc}") from None
    why = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise WorkspaceError(f"cannot read TIME_BUDGET from prepare.py: {why}")
