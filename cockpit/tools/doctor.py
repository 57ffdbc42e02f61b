"""``cockpit doctor``: the prerequisites of a profile, one line per check.

For the h100 profile (the one that needs CUDA): Python >= 3.11 (pyproject's
requires-python); Python.h, which Triton compiles its launcher against when
torch.compile runs on CUDA (Debian/Ubuntu: python3.X-dev); a C compiler for the
same (``$CC``, else gcc or cc: build-essential); and the NVIDIA driver against
the torch build (substrate.prepare ``cuda_problem``: a CPU-only wheel, no driver,
a driver older than the build's CUDA needs, with what to install). For the cpu
and tiny profiles only Python matters: CUDA is optional there.

Each check is a function of what it inspects, so tests drive both outcomes
without a GPU; ``run_checks`` gathers the real values. ``cockpit init --profile
h100`` prints the same lines as warnings (a box without a GPU can still prepare).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

MIN_PYTHON = (3, 11)  # pyproject.toml requires-python


@dataclass(frozen=True)
class Check:
    """One prerequisite: its ``name``, whether it holds (``ok``) and one line of
    ``detail`` (what was found, or what to install)."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def check_python(version: Sequence[int] = tuple(sys.version_info[:3])) -> Check:
    """Python >= MIN_PYTHON; ``version`` as (major, minor, micro)."""
    text = ".".join(map(str, version[:3]))
    if tuple(version[:2]) >= MIN_PYTHON:
        return Check("python", True, f"Python {text}")
    return Check("python", False, f"Python {text} is older than 3.11: install python3.11 (or newer) with its "
                                  "-venv and -dev packages, or uv, and run make again")


def check_python_headers(include_dir: Optional[str] = None, version: Sequence[int] = sys.version_info[:2]) -> Check:
    """Python.h in ``include_dir`` (default: this interpreter's sysconfig include path)."""
    include = Path(include_dir or sysconfig.get_paths()["include"])
    if (include / "Python.h").is_file():
        return Check("Python.h", True, str(include / "Python.h"))
    return Check("Python.h", False, f"no Python.h in {include}: Triton (torch.compile on CUDA) needs it; "
                                    f"install python{version[0]}.{version[1]}-dev")


def check_compiler(which: Callable[[str], Optional[str]] = shutil.which,
                   environ: Optional[dict] = None) -> Check:
    """A C compiler for Triton: ``$CC`` when set, else gcc, else cc, found by ``which``."""
    env = os.environ if environ is None else environ
    for name in ([env["CC"]] if env.get("CC") else []) + ["gcc", "cc"]:
        path = which(name)
        if path:
            return Check("C compiler", True, path)
    return Check("C compiler", False, "no gcc or cc on PATH: Triton (torch.compile on CUDA) needs one; "
                                      "install build-essential (Debian/Ubuntu) or gcc")


def check_cuda(torch_module=None, driver=...) -> Check:
    """The NVIDIA driver and torch build (substrate.prepare ``cuda_problem``); when CUDA
    works, the GPU's name and capability. Imports torch (about 1 s)."""
    from substrate.prepare import cuda_problem, nvidia_driver_version

    import torch
    tm = torch if torch_module is None else torch_module
    driver = nvidia_driver_version() if driver is ... else driver
    build = f"torch {tm.__version__}, CUDA build {tm.version.cuda or 'none'}, driver {driver or 'none'}"
    problem = cuda_problem(tm, driver)
    if problem:
        return Check("CUDA", False, problem)
    props = tm.cuda.get_device_properties(0)
    return Check("CUDA", True, f"{props.name} (sm_{props.major}{props.minor}); {build}")


def run_checks(profile: str) -> list[Check]:
    """The checks that matter for ``profile``: all four for one that needs CUDA
    (h100), Python alone otherwise."""
    from substrate.prepare import PROFILES

    if not PROFILES[profile]["NEEDS_CUDA"]:
        return [check_python()]
    return [check_python(), check_python_headers(), check_compiler(), check_cuda()]


def doctor(profile: str, out=None) -> int:
    """``cockpit doctor --profile P``: print one line per check; 0 when all pass, else 1."""
    from substrate.prepare import PROFILES

    out = out or sys.stdout
    checks = run_checks(profile)
    for check in checks:
        print(check.line(), file=out)
    if not PROFILES[profile]["NEEDS_CUDA"]:
        print(f"profile {profile}: CUDA is optional (CUDA, MPS or the CPU); no GPU prerequisites", file=out)
    return 0 if all(c.ok for c in checks) else 1
