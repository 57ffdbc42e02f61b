"""Checks of the environment before a session starts and before every run.

Each check returns None, or one line that says what is wrong and how to fix
it. At start-up a problem refuses the session (nothing has been written);
before a run (and between experiments) the engine pauses with that line and
checks again on resume, so nothing runs, and nothing is written, in a
workspace that cannot take it:

- the workspace, results.tsv, records.jsonl, logs/ or .cockpit/ not writable
  (a read-only file or file system);
- the disk nearly full (under ``MIN_FREE_BYTES`` free);
- the run branch gone (deleted mid-session) or not checked out;
- the fixed harness (prepare.py) changed since the session started: its
  sha256 is taken at start and compared before every run;
- train.py a symbolic link or not a regular file (edits would leave the
  workspace).
"""

from __future__ import annotations

import os
import shutil
from typing import Optional

from cockpit.store.journal import DIRECTORY
from cockpit.store.repo import GitRepo, short
from cockpit.store.workspace import Workspace, sha256_file

MIN_FREE_BYTES = 16 * 2**20  # a run's log and rows need far less; below this the disk is full


def writable_problem(ws: Workspace) -> Optional[str]:
    """A file or folder cockpit appends to that it may not write."""
    for path in (ws.path, ws.results_tsv, ws.records_jsonl, ws.logs, ws.path / DIRECTORY):
        if path.exists() and not os.access(path, os.W_OK):
            return (f"{path} is not writable (a read-only file or file system): cockpit appends its "
                    "results there; make it writable")
    return None


def disk_problem(ws: Workspace) -> Optional[str]:
    """The workspace's file system has (almost) no free space left."""
    free = shutil.disk_usage(ws.path).free
    if free < MIN_FREE_BYTES:
        return (f"the disk is full: {free / 2**20:.1f} MiB free on the file system of {ws.path}; "
                "free some space")
    return None


def branch_problem(repo: GitRepo, branch: str, kept: str) -> Optional[str]:
    """The run branch was deleted, or another branch (or a detached HEAD) is checked out."""
    if not repo.branch_exists(branch):
        return (f"the run branch {branch} is gone (deleted?); recreate it at the last keep with "
                f"`git checkout -b {branch} {short(kept)}`")
    current = repo.current_branch()
    if current != branch:
        return (f"{current or 'a detached HEAD'} is checked out, not the run branch {branch}; "
                f"check it out again with `git checkout {branch}`")
    return None


def harness_problem(ws: Workspace, started_sha: str, base: str) -> Optional[str]:
    """prepare.py's sha256 differs from the one the session started with."""
    sha = sha256_file(ws.prepare_py)
    if sha == started_sha:
        return None
    now = sha[:12] if sha else "missing"
    return (f"prepare.py (the fixed harness) changed since the session started (sha256 {started_sha[:12]} -> "
            f"{now}): runs would not be comparable; the run is refused. Put it back as it was in "
            f"{short(base)} (`git checkout {short(base)} -- prepare.py`), or stop and start a new session")


def editable_problem(ws: Workspace) -> Optional[str]:
    """train.py is not a regular file inside the workspace: a symlink (an edit
    would land where it points, outside git's reach: no diff, no reset) or not
    a file at all."""
    path = ws.train_py
    if path.is_symlink():
        return (f"{path} is a symbolic link (to {os.readlink(path)}): the agent's edits would land outside "
                "the workspace, where git neither records nor resets them; replace it with a regular file")
    if path.exists() and not path.is_file():
        return f"{path} is not a regular file; train.py must be one"
    return None


def start_problem(ws: Workspace) -> Optional[str]:
    """What stops a session from starting at all (before anything is written)."""
    return editable_problem(ws) or writable_problem(ws) or disk_problem(ws)


def run_problem(ws: Workspace, repo: GitRepo, branch: str, kept: str, harness_sha: str,
                base: str) -> Optional[str]:
    """What stops the next experiment or run (the first problem found)."""
    return (editable_problem(ws) or writable_problem(ws) or disk_problem(ws) or branch_problem(repo, branch, kept)
            or harness_problem(ws, harness_sha, base))
