"""Test-only fault injection: make the engine die at a chosen point, as kill -9 would.

``COCKPIT_FAULT=POINT`` (or ``POINT@N``: only in experiment N) makes the engine
call ``os._exit(137)`` when it reaches POINT: no ``finally``, no flush, no
clean-up, exactly what a SIGKILL or a power cut leaves behind. The fault tests
(tests/test_faults.py) restart a session on what is left and check the
journal's reconciliation. Never set it outside tests.

Points, in the order an experiment reaches them:

- ``while-proposing``: the agent is being asked after the previous run ended (the
  serial loop, a re-ask, a fix; not the baseline); nothing of this experiment is
  committed or journaled. A pipelined ask runs during the previous run: killing
  the engine then is a kill during training.
- ``after-commit``: the proposal is committed and its journal entry opened; the run has not started.
- ``after-run``: the run has ended and its log is complete; no row yet.
- ``mid-row``: the results.tsv row is being appended: only its first half is
  written (flushed and fsynced), then the exit; the restart completes the torn
  line (cockpit.engine.reconcile, rule 2).
- ``after-row``: the results.tsv row, the record and the journal's row entry are written; the entry is not closed.
"""

from __future__ import annotations

import os
from typing import Callable

FAULT_ENV = "COCKPIT_FAULT"
POINTS = ("while-proposing", "after-commit", "after-run", "mid-row", "after-row")
EXIT_CODE = 137  # what a shell reports for a process killed by SIGKILL


def _hit(point: str, experiment: int) -> bool:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return False
    name, _, number = spec.partition("@")
    return name == point and (not number or int(number) == experiment)


def fault_point(point: str, experiment: int) -> None:
    """Exit the process at once when ``COCKPIT_FAULT`` names ``point`` (and, with
    ``@N``, ``experiment`` is N)."""
    if _hit(point, experiment):
        os._exit(EXIT_CODE)


def torn_write(point: str, experiment: int, path: "os.PathLike | str", text: Callable[[], str]) -> None:
    """When ``point`` is hit: append the first half of ``text()`` to ``path``
    (flushed and fsynced, no newline at its end), then exit at once."""
    if not _hit(point, experiment):
        return
    data = text().encode("utf-8")
    with open(path, "ab") as handle:
        handle.write(data[:len(data) // 2])
        handle.flush()
        os.fsync(handle.fileno())
    os._exit(EXIT_CODE)
