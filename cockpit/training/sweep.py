"""Processes of a run that left its process group (``setsid``), found by the
``COCKPIT_RUN_ID`` they inherit (cockpit.training.runner sets it per run) in
``/proc/PID/environ``, and killed (cockpit.training.orphans covers those that
also cleared their environment).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Optional


RUN_ID_ENV = "COCKPIT_RUN_ID"  # set to a unique value per run; inherited by every descendant


def sweep(run_id: str, skip_group: Optional[int] = None) -> set[int]:
    """SIGKILL every live process whose environment holds ``COCKPIT_RUN_ID=run_id``
    (members of process group ``skip_group`` excepted: the group kill got them);
    returns their pids. Unreadable /proc entries are skipped; no /proc, no sweep."""
    proc = Path("/proc")
    if not proc.is_dir():
        return set()
    needle = f"\0{RUN_ID_ENV}={run_id}\0".encode()
    killed: set[int] = set()
    for _ in range(5):  # again, for any process forked during a pass
        found = False
        for entry in proc.iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if fields[0] == "Z" or int(fields[2]) == skip_group:
                    continue
                if needle not in b"\0" + (entry / "environ").read_bytes() + b"\0":
                    continue
                os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                continue
            killed.add(int(entry.name))
            found = True
        if not found:
            break
    return killed
