"""The workspace's ``.cockpit/`` directory: which engine runs here, and how to reach it.

    .cockpit/engine.lock       held (flock, exclusive) by the process running the engine
    .cockpit/start.lock        held by a ``cockpit`` that is starting an engine
    .cockpit/state.json        the engine's pid, mode, tag, socket, replay log, status
    .cockpit/engine.sock       the daemon's Unix socket (elsewhere when the path is too long:
                               TMPDIR/cockpit-UID/, used only when it is a real directory of
                               this user; its mode is set to 0700)
    .cockpit/sessions/*.jsonl  one replay log per daemon session (cockpit.serve.wire lines)

An engine runs here iff ``engine.lock`` is held: the kernel drops the lock when
its process dies, however it dies, so a pid that was reused cannot pass for an
engine. ``state.json`` is written atomically (temporary file, rename); its
``status`` is "starting", "running" or "ended". A state that is not "ended"
while nobody holds the lock is stale: the engine died; ``clean_stale`` marks it.
The directory is git-ignored (init's .gitignore; ``.git/info/exclude`` otherwise).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Optional

from cockpit.clock import now_iso

DIRNAME = ".cockpit"
MAX_SOCKET_PATH = 100  # bytes; AF_UNIX paths are limited to 107 on Linux


class RunDirError(RuntimeError):
    """``.cockpit/`` cannot be written (a read-only workspace, a full disk); one line."""


class EngineBusy(RunDirError):
    """Another process holds the workspace's engine lock; one line naming it."""


class Lock:
    """An exclusive flock on ``path``, held until ``release()`` (or the process ends)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = -1


def _try_lock(path: Path) -> Optional[Lock]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise RunDirError(f"cannot open {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return Lock(path, fd)


def private_directory(folder: Path) -> Path:
    """``folder``, made (mode 0700) when missing, once it is certain that only this user
    can reach what is put in it (the engine's socket takes commands): a real directory,
    not a symbolic link, owned by ``os.getuid()``. A directory of ours with another mode
    (e.g. 0777) is set to 0700. Checked on the opened directory (O_NOFOLLOW), so it
    cannot be swapped between the check and the chmod. Returns ``folder``; raises
    RunDirError (one line: the path, why, how to fix it) otherwise."""
    fix = (f"remove it (`rm -rf {folder}`, as its owner or root) or give the workspace a shorter path, "
           f"so its socket fits in .cockpit/")
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RunDirError(f"cannot create {folder} (the engine's socket directory): {exc.strerror}") from None
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if os.path.islink(folder) or not os.path.isdir(folder):
            kind = "a symbolic link" if os.path.islink(folder) else "not a directory"
            raise RunDirError(f"{folder} is {kind}, not a directory of yours: the engine's socket would not "
                              f"be private there; {fix}") from None
        raise RunDirError(f"cannot open {folder} (the engine's socket directory): {exc.strerror}; {fix}") from None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid():
            raise RunDirError(f"{folder} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}): "
                              f"another user could reach the engine's socket there; {fix}")
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
    except OSError as exc:
        raise RunDirError(f"cannot make {folder} private (mode 0700): {exc.strerror}") from None
    finally:
        os.close(fd)
    return folder


class RunDir:
    """``.cockpit/`` of the workspace at ``workspace`` (an absolute path)."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = Path(workspace)
        self.root = self.workspace / DIRNAME
        self.state_path = self.root / "state.json"
        self.sessions = self.root / "sessions"
        self.engine_log = self.workspace / "logs" / "engine.log"

    def ensure(self) -> None:
        """Create the directory (mode 0700: the socket takes commands). Raises RunDirError."""
        try:
            self.root.mkdir(mode=0o700, exist_ok=True)
            self.sessions.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create {self.root}: {exc.strerror}") from None

    def socket_path(self) -> Path:
        """``.cockpit/engine.sock``, or, when that path is too long for AF_UNIX (over
        MAX_SOCKET_PATH bytes), ``<digest>.sock`` (the workspace's hash) in the per-user
        directory ``TMPDIR/cockpit-UID`` (see ``private_directory``). Raises RunDirError
        when that directory cannot be made or is not this user's own."""
        path = self.root / "engine.sock"
        if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
            return path
        folder = private_directory(Path(tempfile.gettempdir()) / f"cockpit-{os.getuid()}")
        digest = hashlib.sha256(os.fsencode(self.workspace)).hexdigest()[:16]
        return folder / f"{digest}.sock"

    # ---------------------------------------------------------------- locks --

    def lock_engine(self) -> Lock:
        """Take the engine lock; raises EngineBusy when another process holds it."""
        self.ensure()
        lock = _try_lock(self.root / "engine.lock")
        if lock is None:
            raise EngineBusy(self.describe_holder())
        return lock

    def engine_running(self) -> bool:
        """Whether some process holds the engine lock now."""
        if not self.root.is_dir():
            return False
        lock = _try_lock(self.root / "engine.lock")
        if lock is None:
            return True
        lock.release()
        return False

    def lock_start(self, timeout_s: float) -> Lock:
        """Take the start lock, waiting up to ``timeout_s`` for another ``cockpit`` that
        is starting an engine. Raises EngineBusy on time-out."""
        self.ensure()
        deadline = time.monotonic() + timeout_s
        while (lock := _try_lock(self.root / "start.lock")) is None:
            if time.monotonic() > deadline:
                raise EngineBusy(f"another cockpit has been starting an engine on {self.workspace} "
                                 f"for over {timeout_s:.0f}s")
            time.sleep(0.05)
        return lock

    # ---------------------------------------------------------------- state --

    def read_state(self) -> Optional[dict]:
        """The state file's object, None when it is missing or unreadable."""
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_state(self, state: dict) -> None:
        """Replace the state file atomically with ``state``. Raises RunDirError."""
        self.ensure()
        tmp = self.state_path.with_suffix(f".tmp{os.getpid()}")
        try:
            tmp.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, self.state_path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise RunDirError(f"cannot write {self.state_path}: {exc.strerror}") from None

    def mark_ended(self, state: dict, reason: str) -> dict:
        """Write ``state`` as ended with ``reason`` (best effort: at the end of a session a full
        disk must not hide its reason); returns the new state."""
        ended = {**state, "status": "ended", "reason": reason, "ended": now_iso()}
        try:
            self.write_state(ended)
        except RunDirError:
            pass
        return ended

    def describe_holder(self) -> str:
        """One line on the process that holds the engine lock (from the state file)."""
        state = self.read_state() or {}
        mode = state.get("mode", "engine")
        what = "a headless session" if mode == "headless" else "an engine"
        return (f"{what} (pid {state.get('pid', '?')}, session {state.get('tag', '?')}) "
                f"already runs on {self.workspace}")

    def clean_stale(self) -> Optional[str]:
        """If the state says an engine runs but none holds the lock, mark it ended
        ("died"), remove its socket, and return a note for the human; else None."""
        state = self.read_state()
        if not state or state.get("status") == "ended" or self.engine_running():
            return None
        socket = state.get("socket")
        if socket:
            Path(socket).unlink(missing_ok=True)
        self.mark_ended(state, "died")
        return (f"the engine of session {state.get('tag', '?')} (pid {state.get('pid', '?')}) died without "
                f"ending it; cleaned up (see {self.engine_log})")
