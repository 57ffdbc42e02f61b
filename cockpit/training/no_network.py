"""Optional: runs without a network (``--no-network``, ``network = false``).

The prepared profiles (cpu, h100, tiny) read their data from the cache and
need no network, so a run can be cut off from it: a model-written train.py
then cannot send anything anywhere. The run command gets a prefix that puts
it in a new, empty network namespace (only a loopback, and that one down):

1. ``unshare --net --`` (util-linux) when cockpit runs as root;
2. ``unshare --user --map-root-user --net --``: an unprivileged user namespace,
   where the kernel allows them (some distributions restrict them: e.g. Ubuntu
   24.04's ``kernel.apparmor_restrict_unprivileged_userns``);
3. ``bwrap --dev-bind / / --unshare-net --die-with-parent --`` (bubblewrap),
   where installed.

``unshare`` execs the command in place (the run's pid, process group and
kills are as without it); bwrap stays as its parent in the same process group.
``network_prefix`` tries each in that order with a probe (a Python child
that must see no interface but ``lo`` and fail to connect out) and returns
the first that works, or raises NoNetworkError saying what was tried. It is
done once at session start: a session asked to run without a network never
trains with one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from cockpit.rules.run_env import run_environment

PROBE_TIMEOUT_S = 20.0
# The probe: interfaces from /proc/net/dev; then a TCP connect to a public address, which
# must fail at once (no route) rather than time out or succeed.
PROBE = r"""
import socket
names = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2).close()
    reached = "yes"
except OSError:
    reached = "no"
print("interfaces=" + ",".join(names), "reached=" + reached)
"""


class NoNetworkError(RuntimeError):
    """No way to run without a network works on this machine; one line saying what was tried."""


def candidates() -> list[list[str]]:
    """The prefixes to try, in order (module docstring), keeping those whose tool is installed."""
    found = []
    if shutil.which("unshare"):
        if os.geteuid() == 0:
            found.append(["unshare", "--net", "--"])
        found.append(["unshare", "--user", "--map-root-user", "--net", "--"])
    if shutil.which("bwrap"):
        found.append(["bwrap", "--dev-bind", "/", "/", "--unshare-net", "--die-with-parent", "--"])
    return found


def probe(prefix: list[str]) -> str:
    """Run the probe under ``prefix``; "" when it ran with no network, else why not (one line)."""
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", PROBE], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, env=run_environment(), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{prefix[0]}: {exc}"
    said = (done.stdout.strip() or done.stderr.strip()).splitlines()
    last = said[-1] if said else f"exit status {done.returncode}"
    if done.returncode != 0:
        return f"{' '.join(prefix[:-1])}: {last}"
    if "reached=no" not in last or any(name not in ("lo", "") for name in
                                       last.split("interfaces=", 1)[-1].split()[0].split(",")):
        return f"{' '.join(prefix[:-1])}: the probe still had a network ({last})"
    return ""


def network_prefix() -> list[str]:
    """The command prefix that runs a command without a network here (module
    docstring). Raises NoNetworkError when none works (or none is installed)."""
    tried = []
    for prefix in candidates():
        failure = probe(prefix)
        if not failure:
            return prefix
        tried.append(failure)
    if not tried:
        raise NoNetworkError("--no-network needs unshare (util-linux) or bwrap (bubblewrap); neither is installed")
    raise NoNetworkError("--no-network: no way to run without a network works here (" + "; ".join(tried) + ")")
