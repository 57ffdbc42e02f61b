"""cockpit doctor and the checks `cockpit init --profile h100` prints: each check on
faked inputs both ways, then the command on this machine (Python.h and gcc are here,
CUDA is not: torch is the CPU build)."""

from __future__ import annotations

import types

import pytest

from cockpit.tools import doctor
from cockpit.cli import main


def test_python_version():
    assert doctor.check_python((3, 11, 7)) == doctor.Check("python", True, "Python 3.11.7")
    old = doctor.check_python((3, 10, 12))
    assert not old.ok and old.detail.startswith("Python 3.10.12 is older than 3.11: install python3.11")
    assert old.line().startswith("FAIL python: ")


def test_python_headers(tmp_path):
    missing = doctor.check_python_headers(str(tmp_path), (3, 12))
    assert not missing.ok and missing.detail.endswith("Triton (torch.compile on CUDA) needs it; install python3.12-dev")
    (tmp_path / "Python.h").write_text("")
    assert doctor.check_python_headers(str(tmp_path)) == doctor.Check("Python.h", True, str(tmp_path / "Python.h"))


def test_c_compiler():
    nothing = doctor.check_compiler(lambda name: None, {})
    assert not nothing.ok and "install build-essential" in nothing.detail
    found = {"clang": "/usr/bin/clang", "gcc": "/usr/bin/gcc"}
    assert doctor.check_compiler(found.get, {"CC": "clang"}).detail == "/usr/bin/clang"  # $CC first
    assert doctor.check_compiler(found.get, {}).detail == "/usr/bin/gcc"


class FakeTorch:
    def __init__(self, available, cuda_build="13.0"):
        self.__version__ = "2.13.0"
        self.version = types.SimpleNamespace(cuda=cuda_build)
        props = types.SimpleNamespace(name="NVIDIA H100 80GB HBM3", major=9, minor=0)
        self.cuda = types.SimpleNamespace(is_available=lambda: available, get_device_properties=lambda i: props)


def test_cuda_against_the_driver():
    works = doctor.check_cuda(FakeTorch(True), driver="580.65.06")
    assert works.ok and works.detail == ("NVIDIA H100 80GB HBM3 (sm_90); torch 2.13.0, CUDA build 13.0, "
                                         "driver 580.65.06")
    old = doctor.check_cuda(FakeTorch(False), driver="535.104.05")
    assert not old.ok and "driver 535.104.05 is too old" in old.detail and "--index-url" in old.detail


def test_doctor_on_this_machine(capsys):
    assert main(["doctor", "--profile", "h100"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["ok   python", "ok   Python.h", "ok   C compiler", "FAIL CUDA"]
    assert "CPU-only build" in lines[3]
    assert main(["doctor", "--profile", "cpu"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("profile cpu: CUDA is optional")


@pytest.mark.parametrize("profile, checked", [("h100", True), ("cpu", False)])
def test_init_prints_the_h100_checks_and_still_succeeds(tmp_path, capsys, profile, checked):
    assert main(["init", str(tmp_path / "ws"), "--profile", profile, "--no-prepare"]) == 0
    out, err = capsys.readouterr()
    assert (f"prerequisites of the h100 profile (cockpit doctor --profile h100):" in out) == checked
    assert ("train.py will stop at once (profile h100 needs CUDA)" in err) == checked
    assert (tmp_path / "ws" / "train.py").exists()
