"""What a run may not leave behind: prepare.py, git's configuration, hooks and attributes.

prepare.py is the fixed harness (data, tokenizer, ``evaluate_bpb``): an edit
of it by a run would change how every later run is scored, so it is put back
like the rest. (The program is not put back, it is held: cockpit.engine.program_hold.)

A train.py can write files as the user. Through git, that would be code run
by the engine itself, outside any run's time limit and with the engine's
environment (its API keys): a ``.git/hooks/pre-commit`` (run at the next
commit), a ``core.fsmonitor`` or ``filter.<name>.smudge`` command in
``.git/config`` (run by the next status or reset), a diff driver in
``.gitattributes``. ``RunGuard`` snapshots those paths before each run and
puts them back right after it, before the engine's next git command; the
engine says in one warning line what it restored. cockpit.store.repo also runs git
with hooks off (``core.hooksPath=/dev/null``, GitPython's commit with
``skip_hooks``), ``core.fsmonitor=false`` and ``--no-ext-diff --no-textconv``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

GUARDED_FILES = ("prepare.py", ".git/config", ".git/info/attributes", ".gitattributes")  # prepare.py: fixed
GUARDED_DIRS = (".git/hooks",)


def _read(path: Path) -> Optional[bytes]:
    try:
        return path.read_bytes() if path.is_file() and not path.is_symlink() else None
    except OSError:
        return None


class RunGuard:
    """Snapshot of the guarded paths of workspace ``root`` (module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.files = {rel: _read(self.root / rel) for rel in GUARDED_FILES}
        self.dirs = {rel: self._tree(self.root / rel) for rel in GUARDED_DIRS}

    @staticmethod
    def _tree(folder: Path) -> dict[str, tuple[Optional[bytes], int]]:
        """Every file under ``folder``: (bytes, mode), a symlink as (None, 0)."""
        if not folder.is_dir() or folder.is_symlink():
            return {}
        tree = {}
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                tree[str(path.relative_to(folder))] = (None, 0)
            elif path.is_file():
                tree[str(path.relative_to(folder))] = (_read(path), path.stat().st_mode & 0o777)
        return tree

    def restore(self) -> list[str]:
        """Put every guarded path back as it was at the snapshot; returns the
        relative paths that the run had changed, created or removed ([] when none).
        Raises OSError when one cannot be put back."""
        changed = []
        for rel, before in self.files.items():
            path = self.root / rel
            present = path.exists() or path.is_symlink()
            if (before is None and not present) or (before is not None and not path.is_symlink()
                                                    and _read(path) == before):
                continue
            changed.append(rel)
            if path.is_symlink() or path.exists():
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            if before is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(before)
        for rel, before in self.dirs.items():
            folder = self.root / rel
            now = self._tree(folder)
            if now == before and not folder.is_symlink():
                continue
            changed.append(rel)
            if folder.is_symlink():
                folder.unlink()
            elif folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True, exist_ok=True)
            for name, (data, mode) in before.items():
                if data is None:
                    continue  # a symlink that was there: not recreated (hooks are off anyway)
                target = folder / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                target.chmod(mode)
        return changed
