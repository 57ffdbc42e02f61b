"""The environment of agent-written code (cockpit.rules.run_env): pure parts of the
allow-list, COCKPIT_PASS_ENV, HF_HUB_OFFLINE and the non-dumpable engine. (The end-to-end
hunt for keys from a real run is tests/test_run_env.py.)"""

from __future__ import annotations

import ctypes
import sys

import pytest

from cockpit.rules import run_env
from cockpit.rules.run_env import (HUB_OFFLINE, PASS_ENV, PR_GET_DUMPABLE, allowed, hide_engine, hub_offline,
                                   passed_names, run_environment)


def test_pass_env_patterns_split_on_commas_and_spaces():
    assert PASS_ENV == "COCKPIT_PASS_ENV"
    assert passed_names({PASS_ENV: "WANDB_MODE,MY_*  OTHER,,"}) == ("WANDB_MODE", "MY_*", "OTHER")
    assert passed_names({PASS_ENV: " , "}) == () and passed_names({}) == ()


def test_pass_env_defaults_to_the_environment(monkeypatch):
    monkeypatch.setenv(PASS_ENV, "A_B")
    assert passed_names() == ("A_B",)
    monkeypatch.delenv(PASS_ENV)
    assert passed_names() == ()


def test_allowed_names_prefixes_patterns_and_never_a_secret():
    assert allowed("PATH") and allowed("CUDA_VISIBLE_DEVICES") and allowed("HF_HUB_CACHE")
    assert not allowed("WANDB_MODE") and not allowed("path")
    assert allowed("WANDB_MODE", ("WANDB_*",)) and not allowed("wandb_mode", ("WANDB_*",))  # case matters
    assert not allowed("OTHER", ("WANDB_*", "MY_?"))
    assert allowed("MY_X", ("WANDB_*", "MY_?"))  # any of the patterns
    assert not allowed("HF_TOKEN") and not allowed("COCKPIT_X_TOKEN") and not allowed("CUDA_SECRET")
    assert not allowed("MY_API_KEY", ("MY_*",)) and not allowed("MY_API_KEY", ("*",))


def test_hub_offline_unless_the_user_set_it(monkeypatch):
    assert HUB_OFFLINE == "HF_HUB_OFFLINE"
    assert hub_offline({}) == {"HF_HUB_OFFLINE": "1"}
    assert hub_offline({"HF_HUB_OFFLINE": "0"}) == {}
    monkeypatch.setenv("HF_HUB_OFFLINE", "")
    assert hub_offline() == {}
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert hub_offline() == {"HF_HUB_OFFLINE": "1"}


def test_the_environment_is_allowed_names_then_unbuffered_then_extra():
    source = {"PATH": "/bin", "PYTHONUNBUFFERED": "0", "OPENAI_API_KEY": "sk-x", "WANDB_MODE": "offline",
              PASS_ENV: "WANDB_*"}
    assert run_environment(environ=source) == {"PATH": "/bin", "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline",
                                               PASS_ENV: "WANDB_*"}
    env = run_environment({"COCKPIT_RUN_ID": "r2", "PATH": "/run/bin", "PYTHONUNBUFFERED": "x"}, environ=source)
    assert env["COCKPIT_RUN_ID"] == "r2" and env["PATH"] == "/run/bin"  # the caller's contract wins
    assert env["PYTHONUNBUFFERED"] == "x"
    assert run_environment(environ={}) == {"PYTHONUNBUFFERED": "1"}


def test_building_an_environment_hides_the_engine_first(monkeypatch):
    calls = []
    monkeypatch.setattr(run_env, "hide_engine", lambda: calls.append("hidden") or True)
    run_environment(environ={})
    assert calls == ["hidden"]


def test_the_environment_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("CUDA_TEST_FLAG", "7")
    monkeypatch.setenv("ZZ_TEST_API_KEY", "sk-0123456789abcdef")
    monkeypatch.setenv(PASS_ENV, "ZZ_*")
    env = run_environment()
    assert env["CUDA_TEST_FLAG"] == "7" and "ZZ_TEST_API_KEY" not in env


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_the_engine_is_made_non_dumpable():
    assert hide_engine() is True
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0
    assert hide_engine() is True  # idempotent
    run_environment(environ={})
    assert libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0


def test_hiding_is_false_off_linux_or_when_prctl_fails(monkeypatch):
    monkeypatch.setattr(run_env.sys, "platform", "darwin")
    assert hide_engine() is False
    monkeypatch.setattr(run_env.sys, "platform", "linux")

    def no_libc(*args, **kwargs):
        raise OSError("no libc")

    monkeypatch.setattr(run_env.ctypes, "CDLL", no_libc)
    assert hide_engine() is False

    class NoPrctl:
        def __init__(self, *args, **kwargs):
            pass

    monkeypatch.setattr(run_env.ctypes, "CDLL", NoPrctl)
    assert hide_engine() is False


def test_hiding_reports_what_prctl_says(monkeypatch):
    """True only when the process reads back as non-dumpable after the set."""
    calls = []

    class Libc:
        def __init__(self, dumpable_after: int) -> None:
            self.state, self.after = 1, dumpable_after

        def prctl(self, option, *args):
            calls.append((option, args))
            if option == run_env.PR_SET_DUMPABLE:
                self.state = self.after
            return self.state if option == PR_GET_DUMPABLE else 0

    monkeypatch.setattr(run_env.ctypes, "CDLL", lambda *a, **k: Libc(0))
    assert hide_engine() is True
    assert calls == [(PR_GET_DUMPABLE, (0, 0, 0, 0)), (run_env.PR_SET_DUMPABLE, (0, 0, 0, 0)),
                     (PR_GET_DUMPABLE, (0, 0, 0, 0))]
    assert (run_env.PR_SET_DUMPABLE, PR_GET_DUMPABLE) == (4, 3)  # <linux/prctl.h>
    monkeypatch.setattr(run_env.ctypes, "CDLL", lambda *a, **k: Libc(1))
    assert hide_engine() is False  # the set did not take

    class Hidden(Libc):
        def __init__(self) -> None:
            super().__init__(0)
            self.state = 0

    calls.clear()
    monkeypatch.setattr(run_env.ctypes, "CDLL", lambda *a, **k: Hidden())
    assert hide_engine() is True
    assert [c[0] for c in calls] == [PR_GET_DUMPABLE, PR_GET_DUMPABLE]  # already hidden: no set
