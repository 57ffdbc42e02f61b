"""Which program the agent reads, and reading it fresh before every proposal.

A session's program is chosen once, at its start: ``--program NAME|PATH`` (CLI)
or ``program = "..."`` (cockpit.toml). A NAME (letters, digits, ``-``, ``_``)
picks ``programs/NAME.md`` shipped with cockpit; anything else is a PATH to a
file (relative to the workspace when it comes from cockpit.toml). Without
either, the workspace's own ``program.md`` is the program (an upstream-layout
repository without one gets the shipped ``default``).

The chosen file is never copied: the engine reads it again before every
proposal (hot reload), so an edit applies from the next experiment on and the
record of each experiment keeps the sha256 of the text its proposal saw.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional

PACKAGE = "programs"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
MAX_PROGRAM_BYTES = 2**20  # 1 MiB: far more than any instructions; reading never takes more


class ProgramError(RuntimeError):
    """The program cannot be used: an unknown NAME, or a file that is missing, a
    directory, a device, FIFO or socket, over MAX_PROGRAM_BYTES, unreadable, not
    UTF-8 or empty. The message (one line) names the file and what to do."""


@dataclass(frozen=True)
class Program:
    """One reading of the program: its ``text``, the ``sha256`` (hex) of its bytes
    and the ``label`` of where it came from (see ``ProgramSource.label``)."""

    text: str
    sha256: str
    label: str


@dataclass(frozen=True)
class ProgramSource:
    """Where the program is read from: a file ``path``, or a shipped program
    ``name`` (``programs/<name>.md`` inside the package) when ``path`` is None.
    ``shown`` is how records and messages name a file (e.g. relative to the workspace)."""

    path: Optional[Path] = None
    name: Optional[str] = None
    shown: Optional[str] = None

    @property
    def label(self) -> str:
        """``programs/<name>.md`` for a shipped program, else ``shown`` or the file's path."""
        if self.path is None:
            return f"{PACKAGE}/{self.name}.md"
        return self.shown or str(self.path)

    def read(self) -> Program:
        """Read the program now (at most MAX_PROGRAM_BYTES + 1 bytes: it never
        blocks on a FIFO nor reads a device without end). Raises ProgramError when
        it is missing, not a regular file, over MAX_PROGRAM_BYTES, unreadable, not
        UTF-8 or empty (whitespace only)."""
        data = self._bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProgramError(f"{self.label} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        if not text.strip():
            raise ProgramError(f"{self.label} is empty; write the agent's instructions into it")
        return Program(text, hashlib.sha256(data).hexdigest(), self.label)

    def sha256(self) -> str:
        """sha256 of the program's bytes now, or "" when it cannot be read."""
        try:
            return self.read().sha256
        except ProgramError:
            return ""

    def _bytes(self) -> bytes:
        if self.path is None:
            try:
                return resources.files(PACKAGE).joinpath(f"{self.name}.md").read_bytes()
            except (FileNotFoundError, ModuleNotFoundError):
                raise ProgramError(f"{self.label} is missing from this installation of cockpit") from None
        try:
            # O_NONBLOCK: opening a FIFO does not wait for a writer (no effect on a regular file)
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise ProgramError(f"{self.label} is missing; create it (the agent's instructions)") from None
        except OSError as exc:
            raise ProgramError(f"{self.label} cannot be read: {exc.strerror or exc}") from None
        kind = _not_a_file(os.fstat(fd).st_mode)
        if kind:
            os.close(fd)
            raise ProgramError(f"{self.label} {kind}; the program must be a text file")
        with os.fdopen(fd, "rb") as handle:
            try:
                data = handle.read(MAX_PROGRAM_BYTES + 1)
            except OSError as exc:
                raise ProgramError(f"{self.label} cannot be read: {exc.strerror or exc}") from None
        if len(data) > MAX_PROGRAM_BYTES:
            raise ProgramError(f"{self.label} is larger than {MAX_PROGRAM_BYTES // 2**20} MiB, the limit of a "
                               "program file; shorten it")
        return data


def _not_a_file(mode: int) -> str:
    """"" for a regular file's ``st_mode``, else what the path is instead."""
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISDIR(mode):
        return "is a directory, not a program file"
    return "is not a regular file (a device, FIFO or socket)"


def shipped_programs() -> list[str]:
    """Names of the programs shipped with cockpit (``programs/*.md``), sorted."""
    try:
        entries = resources.files(PACKAGE).iterdir()
    except ModuleNotFoundError:
        return []
    return sorted(e.name[:-3] for e in entries if e.name.endswith(".md"))


def is_name(spec: str) -> bool:
    """True when ``spec`` is a program NAME (no dot, no slash), False for a PATH."""
    return bool(_NAME.match(spec))


def resolve_program(spec: Optional[str], workspace_root: Path, default_file: Optional[Path] = None) -> ProgramSource:
    """The program source for ``spec`` (NAME, PATH, or None for ``default_file``,
    the workspace's program.md). A relative PATH is taken from ``workspace_root``.

    Raises ProgramError (one line) for an unknown NAME, or a PATH that does not
    exist, is a directory, or is not a regular file (a device, FIFO or socket;
    checked with stat, never opened: a FIFO cannot make this wait).
    """
    if spec is None:
        path = default_file or workspace_root / "program.md"
        return ProgramSource(path=path, shown=_shown(path, workspace_root))
    if is_name(spec):
        known = shipped_programs()
        if spec not in known:
            raise ProgramError(f"unknown program {spec!r}; shipped: {', '.join(known) or 'none'} "
                               f"(for a file, give a path such as ./{spec}.md)")
        return ProgramSource(name=spec)
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else workspace_root / path
    try:
        kind = _not_a_file(path.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        raise ProgramError(f"program file {path} does not exist") from None
    except OSError as exc:
        raise ProgramError(f"program file {path} cannot be read: {exc.strerror or exc}") from None
    if kind:
        raise ProgramError(f"program {path} {kind}; give a program file (a NAME or the path of a .md file)")
    return ProgramSource(path=path.resolve(), shown=_shown(path.resolve(), workspace_root.resolve()))


def _shown(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it lies inside it, else absolute."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
