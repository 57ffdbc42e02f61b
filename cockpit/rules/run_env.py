"""The environment of code the agent wrote: an allow-list, never ``os.environ``.

train.py is a model's code, run unattended as the user who holds the API keys.
Every child cockpit starts to run workspace code (a training run, a noise or
holdout re-run, prepare.py, the TIME_BUDGET probe) gets ``run_environment()``:
the variables a Python/PyTorch/CUDA run needs, by name, and nothing else. The
agent's keys live only in the engine process (litellm reads them there).

Allowed: the names in ``ALLOWED`` (PATH, HOME, locale, temp dir, terminal, the
virtual environment) and the names starting with one of ``ALLOWED_PREFIXES``
(``LC_``, ``CUDA_``, ``NVIDIA_``, ``TORCH``, ``PYTORCH_``, ``TRITON_``,
``NCCL_``, ``OMP_``, ``MKL_``, ``HF_HUB_``/``HF_HOME``, ``XDG_``, ``COCKPIT_``,
``PYTHON``). Refused even then: every name that says it is a secret
(cockpit.rules.redact ``SECRET_NAME``: ``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``,
``*_PASSWORD``, ...), so ``HF_TOKEN`` or ``COCKPIT_X_TOKEN`` never pass.
More names pass when ``COCKPIT_PASS_ENV`` lists them (``"WANDB_MODE,MY_*"``:
shell-style patterns; a secret's name is refused there too).
A training run (and its noise and holdout re-runs) also gets
``HF_HUB_OFFLINE=1`` (``hub_offline``), unless the user set it; prepare.py and
the TIME_BUDGET probe do not (prepare fetches the attention kernel, online).

A child's own environment is not the only way to the keys: a process of the
same user can read the engine's ``/proc/PID/environ`` and memory (walking up
its parent pids to find it). ``run_environment`` therefore first makes the
engine non-dumpable (``hide_engine``: Linux ``prctl(PR_SET_DUMPABLE, 0)``,
proc(5)): those files then need CAP_SYS_PTRACE (root), as does ptrace. The
flag is not inherited across ``execve``, so the runs, git and the cockpit's
own children are as before; the engine itself writes no core dump and cannot
be attached to by py-spy or gdb as the same user.
"""

from __future__ import annotations

import ctypes
import fnmatch
import os
import sys
from typing import Mapping, Optional

from cockpit.rules.redact import SECRET_NAME

ALLOWED = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "TZ", "TMPDIR", "TEMP", "TMP",
    "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH",
    "CC", "CXX", "NO_COLOR", "COLUMNS", "LINES", "SYSTEMROOT", "UV_CACHE_DIR",
})
ALLOWED_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "TORCH", "PYTORCH_", "TRITON_", "NCCL_", "OMP_", "MKL_",
                    "OPENBLAS_", "HF_HUB_", "HF_HOME", "HF_DATASETS_CACHE", "XDG_", "COCKPIT_", "PYTHON",
                    "KERNELS_")


PR_SET_DUMPABLE, PR_GET_DUMPABLE = 4, 3  # <linux/prctl.h>
PASS_ENV = "COCKPIT_PASS_ENV"  # more names to pass: "WANDB_MODE,MY_*" (shell-style patterns)
HUB_OFFLINE = "HF_HUB_OFFLINE"  # huggingface_hub (and kernels through it) makes no network call when "1"


def passed_names(environ: Optional[Mapping[str, str]] = None) -> tuple[str, ...]:
    """The patterns ``COCKPIT_PASS_ENV`` names (comma- or space-separated), () when unset."""
    source = os.environ if environ is None else environ
    return tuple(p for p in source.get(PASS_ENV, "").replace(",", " ").split() if p)


def allowed(name: str, extra: tuple[str, ...] = ()) -> bool:
    """True when variable ``name`` may reach workspace code (module docstring);
    ``extra``: patterns from COCKPIT_PASS_ENV. A secret's name never passes."""
    if SECRET_NAME.search(name):
        return False
    return (name in ALLOWED or name.startswith(ALLOWED_PREFIXES)
            or any(fnmatch.fnmatchcase(name, pattern) for pattern in extra))


def hub_offline(environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """What a run of train.py adds to its environment so that it makes no Hub call
    while its budget's clock runs: ``{"HF_HUB_OFFLINE": "1"}`` (``kernels`` then
    loads the FlashAttention-3 build prepare.py fetched, from the cache; a slow or
    rate-limited Hub call would otherwise switch one run to another attention
    backend, and its val_bpb with it). ``{}`` when ``environ`` (default
    ``os.environ``) sets HF_HUB_OFFLINE itself: the user's value passes the
    allow-list (``HF_HUB_``) as it is. Not for prepare.py or the TIME_BUDGET probe."""
    source = os.environ if environ is None else environ
    return {} if HUB_OFFLINE in source else {HUB_OFFLINE: "1"}


def hide_engine() -> bool:
    """Make this process non-dumpable (module docstring), so that a process of the same
    user cannot read its ``/proc/PID/environ`` or memory. True when it is so now; False
    off Linux or when prctl fails. Cheap and idempotent."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0:
            libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        return libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def run_environment(extra: Optional[Mapping[str, str]] = None,
                    environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The environment for a child that runs workspace code: the allowed variables
    of ``environ`` (default ``os.environ``), ``PYTHONUNBUFFERED=1``, then ``extra``
    (cockpit's own run contract: COCKPIT_TIME_BUDGET, COCKPIT_RUN_ID, ...; the
    caller's, passed as given). Makes this process non-dumpable first (``hide_engine``):
    whoever builds a run's environment is about to start workspace code."""
    hide_engine()
    source = os.environ if environ is None else environ
    extra_names = passed_names(source)
    env = {name: value for name, value in source.items() if allowed(name, extra_names)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env
