"""The agent's code gets an allow-listed environment: no API key reaches train.py,
prepare.py or the TIME_BUDGET probe (they used to get the whole os.environ)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from engine_support import FAKES, ScriptedAgent, fast_config, lr, make_workspace, run_session

from cockpit.store.records import read_records
from cockpit.rules.run_env import allowed, run_environment
from cockpit.store.workspace import harness_budget

KEY = "sk-test-HUNTED-0123456789"
SECRETS = {"OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": "sk-ant-" + KEY, "HF_TOKEN": "hf_" + KEY,
           "AWS_SECRET_ACCESS_KEY": KEY + "-aws", "GITHUB_TOKEN": KEY + "-gh", "DB_PASSWORD": KEY + "-db",
           "COCKPIT_X_TOKEN": KEY + "-ours", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "LITELLM_LOG": "DEBUG"}

# the hunt: every environment value, forwards, reversed and base64-encoded
HUNT = f'''
import base64 as _b64, json as _json, os as _os
_key = {KEY[:8]!r} + {KEY[8:]!r}  # not the key's text in train.py itself
_forms = (_key, _key[::-1], _b64.b64encode(_key.encode()).decode())
_found = [name for name, value in _os.environ.items() if any(form in value for form in _forms)]
_found += ["/proc/self/environ"] if any(f.encode() in open("/proc/self/environ", "rb").read() for f in _forms) else []
print("hunt:", _json.dumps({{"found": _found, "names": sorted(_os.environ)}}), flush=True)
'''


def test_pass_env_adds_names_but_never_a_secret():
    env = run_environment(environ={"WANDB_MODE": "offline", "MY_FLAG": "1", "MY_API_KEY": KEY, "OTHER": "x",
                                   "COCKPIT_PASS_ENV": "WANDB_MODE, MY_*"})
    assert env == {"WANDB_MODE": "offline", "MY_FLAG": "1", "COCKPIT_PASS_ENV": "WANDB_MODE, MY_*",
                   "PYTHONUNBUFFERED": "1"}


def test_the_allow_list():
    env = run_environment({"COCKPIT_RUN_ID": "r1"}, environ={**SECRETS, "PATH": "/bin", "HOME": "/h",
                                                              "CUDA_VISIBLE_DEVICES": "0", "LC_ALL": "C",
                                                              "TORCHINDUCTOR_CACHE_DIR": "/c", "VIRTUAL_ENV": "/v"})
    assert env == {"PATH": "/bin", "HOME": "/h", "CUDA_VISIBLE_DEVICES": "0", "LC_ALL": "C",
                   "TORCHINDUCTOR_CACHE_DIR": "/c", "VIRTUAL_ENV": "/v", "PYTHONUNBUFFERED": "1", "COCKPIT_RUN_ID": "r1"}
    assert not any(allowed(name) for name in SECRETS)


async def test_train_py_hunting_its_environment_finds_no_key(tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    source = (FAKES / "train.py").read_text().replace('print("---")', HUNT + 'print("---")', 1)
    ws = make_workspace(tmp_path / "ws", train_py=source)
    reason, _ = await run_session(ws, ScriptedAgent([lr("0.04", "0.08")]), fast_config(max_experiments=2))
    assert reason == "max-experiments"
    for record in [r for r in read_records(ws.records_jsonl) if r["kind"] == "experiment"]:
        log = (ws.path / record["log_path"]).read_text()
        hunt = json.loads(log.split("hunt: ", 1)[1].splitlines()[0])
        assert hunt["found"] == [] and all(allowed(name) for name in hunt["names"]), hunt
        assert "COCKPIT_RUN_ID" in hunt["names"] and "OPENAI_BASE_URL" not in hunt["names"]
    forms = (KEY, KEY[::-1], base64.b64encode(KEY.encode()).decode())
    hits = [str(p) for p in ws.path.rglob("*") if p.is_file() and any(f.encode() in p.read_bytes() for f in forms)]
    assert hits == []


def test_the_time_budget_probe_and_prepare_get_no_key(tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    ws = make_workspace(tmp_path / "ws")
    probe = tmp_path / "probe.json"
    ws.prepare_py.write_text(f"import json, os\njson.dump(sorted(os.environ), open({str(probe)!r}, 'w'))\n"
                             + ws.prepare_py.read_text())
    seconds, _, _ = harness_budget(ws)
    assert seconds > 0
    names = json.loads(probe.read_text())
    assert names and all(allowed(name) for name in names) and "OPENAI_API_KEY" not in names


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]  # another user than the test's
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("builds_a_run_env", [False, True])
def test_a_process_of_the_same_user_cannot_read_the_engines_environment(builds_a_run_env):
    """An "engine" holding the key and a reader run as one user (nobody); the reader is
    what a train.py that walks up its parent pids does: cat /proc/ENGINE/environ. Once
    the engine has built a run's environment, that fails; before, it reads the key."""
    python = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.path.exists(p)), None)
    if os.geteuid() != 0 or not shutil.which("setpriv") or python is None:
        pytest.skip("needs root and setpriv to run two processes as another user")
    build = "run_environment()" if builds_a_run_env else "None"
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from cockpit.rules.run_env import run_environment; "
            f"{build}; print('ready', flush=True); time.sleep(30)")
    engine = subprocess.Popen([*NOBODY, python, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={"PATH": os.environ["PATH"], "OPENAI_API_KEY": KEY})
    try:
        if engine.stdout.readline().strip() != "ready":
            pytest.skip("the system python cannot import cockpit as another user here")
        read = subprocess.run([*NOBODY, "cat", f"/proc/{engine.pid}/environ"], capture_output=True)
    finally:
        engine.kill()
        engine.wait()
    if builds_a_run_env:
        assert read.returncode != 0 and KEY.encode() not in read.stdout
    else:
        assert KEY.encode() in read.stdout  # the leak run_environment closes
