"""A program.md that changed while a run trained is held until a person confirms it.

train.py runs as the user and can write the workspace's program.md, so a
model could rewrite its own instructions. The engine cannot tell who wrote a
file, and reverting it would fight a person editing it in another pane, so it
neither reverts nor trusts such a change: ``ProgramHold`` wraps the session's
``ProgramSource`` and

- when a run starts, ``run_started()`` remembers the program; a proposal asked
  while the run trains (the pipelined ask ahead) gets that text even when the
  file changes meanwhile;
- when the run ends, ``run_ended(n)``: if the file's bytes differ from that
  text, the change is **held**: every later proposal is asked with the text
  the program had before the run (the file stays as it is: nothing is lost),
  and a warning line says how to confirm;
- a confirmation releases the hold: saving program.md in the cockpit's editor
  (ctrl+o sends ``AcceptProgram`` with the saved text's sha256), ``p`` / resume
  (SIGUSR1 in headless mode), or putting the file back as it was.

A change made while no run trains (between runs, while paused) is taken from
the next proposal on, as before. A shipped program (``programs/NAME.md``)
lives in the installed package and is never held.
"""

from __future__ import annotations

from typing import Optional

from cockpit.store.programs import Program, ProgramError, ProgramSource


class ProgramHold:
    """The session's program, read fresh before every proposal except while a run
    trains (proposals asked then see the text it had when the run started) and
    while a change made during a run is held (module docstring). Reads like a
    ``ProgramSource``: ``read()``, ``sha256()``, ``label``, ``path``, ``name``."""

    def __init__(self, source: ProgramSource) -> None:
        self.source = source
        self.held: Optional[Program] = None  # the text proposals use while a change is held
        self._baseline: Optional[Program] = None  # the program as the running run started
        self._file_sha = ""  # the file's sha256 as the running run started

    @property
    def label(self) -> str:
        return self.source.label

    @property
    def path(self):
        return self.source.path

    @property
    def name(self):
        return self.source.name

    def read(self) -> Program:
        """The program proposals use now: the held text while a change is held
        (released when the file is back to it), the run's starting text while a
        run trains and the file differs, else the file. Raises ProgramError as
        ``ProgramSource.read`` does when the file is used and cannot be read."""
        kept = self.held or self._baseline
        if kept is None:
            return self.source.read()
        try:
            now = self.source.read()
        except ProgramError:
            return kept  # unreadable now: what the agent had still stands
        if now.sha256 == kept.sha256:
            self.held = None  # (put back as it was: nothing left to hold)
            return now
        return kept

    def sha256(self) -> str:
        """sha256 of the text proposals use now, or "" when it cannot be read."""
        try:
            return self.read().sha256
        except ProgramError:
            return ""

    def run_started(self) -> None:
        """A run starts: remember the program proposals use now and the file's
        sha256 (nothing for a shipped program, or when it cannot be read)."""
        self._baseline, self._file_sha = None, ""
        if self.source.path is not None:
            try:
                self._baseline = self.read()
            except ProgramError:
                return
            self._file_sha = self.source.sha256()

    def run_ended(self, n: int) -> Optional[str]:
        """Run ``n`` ended: hold a change of the file made while it trained and return
        the warning line to show, else None (the file did not change during the run,
        or there was nothing to compare with)."""
        baseline, self._baseline = self._baseline, None
        now = self.source.sha256()
        if baseline is None or now in ("", self._file_sha, baseline.sha256):
            return None  # unchanged (or unreadable: the next proposal reads it and says so)
        if self.held is None:
            self.held = baseline
        return (f"#{n}: {self.label} changed while the run trained; the agent keeps the text it had before "
                "until you confirm the change: save it in the cockpit's editor (ctrl+o), press p "
                "(resume; SIGUSR1 in headless mode) or put the file back")

    def accept(self, sha256: Optional[str] = None) -> Optional[str]:
        """Take the file as it is now, releasing a held change and the running run's
        baseline (``sha256`` given: only when the file's bytes have that hash, as the
        cockpit's editor saved them). Returns the line to show when a change was
        held or kept from the agent, else None."""
        try:
            now = self.source.read() if self.source.path is not None else None
        except ProgramError:
            return None
        if now is None or (sha256 is not None and now.sha256 != sha256):
            return None
        kept = self.held or self._baseline
        self.held = None
        if self._baseline is not None:
            self._baseline, self._file_sha = now, now.sha256  # the run's end compares with the confirmed text
        if kept is None or kept.sha256 == now.sha256:
            return None
        return f"{self.label}: the change is confirmed; the agent reads it from the next proposal on"
