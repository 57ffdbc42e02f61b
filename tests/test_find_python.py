"""scripts/find_python.sh, which the Makefile asks for a Python >= 3.11 when PYTHON is not
given: run with a PATH holding only fake interpreters and a fake uv (shell scripts)."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "find_python.sh"
OLD = '#!/bin/sh\ncase "$2" in *platform*) echo 3.10.12;; *) exit 1;; esac\n'  # python 3.10
NEW = "#!/bin/sh\nexit 0\n"  # a Python >= 3.11: its version check passes


def fake_bin(tmp_path, **scripts) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in scripts.items():
        path = folder / name.replace("_", ".")
        path.write_text(text)
        path.chmod(0o755)
    return folder


def find(folder):
    return subprocess.run(["/bin/sh", str(SCRIPT)], env={"PATH": str(folder)}, capture_output=True, text=True,
                          timeout=30)


def test_python3_itself_when_it_is_new_enough(tmp_path):
    folder = fake_bin(tmp_path, python3=NEW, python3_12=NEW)
    assert find(folder).stdout.strip() == str(folder / "python3")


def test_a_newer_python3_x_when_python3_is_older_than_3_11(tmp_path):
    folder = fake_bin(tmp_path, python3=OLD, python3_11=NEW, python3_12=NEW)
    run = find(folder)
    assert run.returncode == 0 and run.stdout.strip() == str(folder / "python3.12")  # newest first


def test_uv_finds_one(tmp_path):
    managed = fake_bin(tmp_path / "uv", python3=NEW) / "python3"
    folder = fake_bin(tmp_path, python3=OLD, uv=f'#!/bin/sh\n[ "$2" = find ] && echo {managed}\n')
    assert find(folder).stdout.strip() == str(managed)


def test_uv_installs_one_when_it_finds_none(tmp_path):
    managed = fake_bin(tmp_path / "uv", python3=NEW) / "python3"
    flag = tmp_path / "installed"
    uv = (f'#!/bin/sh\nif [ "$2" = install ]; then echo "$3" > {flag}; exit 0; fi\n'
          f'[ -e {flag} ] && echo {managed} && exit 0\nexit 2\n')
    folder = fake_bin(tmp_path, python3=OLD, uv=uv)
    run = find(folder)
    assert run.stdout.strip() == str(managed) and flag.read_text().strip() == "3.12"


def test_one_line_saying_what_to_install_when_nothing_is_new_enough(tmp_path):
    folder = fake_bin(tmp_path, python3=OLD, python3_10=OLD)
    run = find(folder)
    assert run.returncode == 1 and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("cockpit needs Python 3.11+ (found python3: 3.10.12). Install one: sudo apt install "
                               "python3.11 python3.11-venv python3.11-dev")
    assert "uv (https://docs.astral.sh/uv/)" in lines[0]


def test_the_makefile_asks_the_script_only_when_python_is_not_given():
    makefile = (SCRIPT.parents[1] / "Makefile").read_text()
    assert "\nPYTHON ?=\n" in makefile
    dry = subprocess.run(["make", "-n", "-B", "install", "VENV=/nonexistent/venv", "PYTHON=/opt/py/bin/python3"],
                         cwd=SCRIPT.parents[1], capture_output=True, text=True, timeout=30)
    assert 'py="/opt/py/bin/python3"; [ -n "$py" ] || py=$(scripts/find_python.sh)' in dry.stdout
