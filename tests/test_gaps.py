"""Engine paths no other test covered: a provider's Retry-After, sweep's negative
cases, SIGINT/SIGHUP of a headless session, the default hard limit, a full disk on
records.jsonl and on the journal, and a noise-floor re-run left running by a dead
engine.

Already covered elsewhere (not repeated here): a run past its hard limit is a crash
row " [timed out]" (tests/test_ratchet.py test_nan_and_hard_limit_are_crashes) with
its process group gone (tests/test_faults.py
test_a_misbehaving_run_is_one_crash_row_and_leaves_no_process, "silent" and
"ignore_term"); SIGTERM of a headless session (tests/test_cli.py).
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path

import pytest
from engine_support import (FAKES, ScriptedAgent, cockpit_argv, fast_config, lr, lr_to, make_workspace, marked, of_type,
                            processes_in, run_session)

from cockpit.commands import Resume
from cockpit.engine.session import SessionConfig
from cockpit.events import EngineMessage, PhaseChanged, RowLogged
from cockpit.store.journal import Journal, unclosed
from cockpit.store.records import read_records
from cockpit.store.results import read_rows
from cockpit.store.settings import Settings
from cockpit.training.sweep import RUN_ID_ENV, sweep

ROOT = Path(__file__).resolve().parent.parent  # the tree under test


def tree_env(extra: dict | None = None) -> dict:
    """This process's environment, minus COCKPIT_FAULT, with ROOT first on PYTHONPATH: a
    cockpit subprocess imports the cockpit under test, not whichever one the venv's
    console script was installed from (an editable install elsewhere)."""
    env = {k: v for k, v in os.environ.items() if k != "COCKPIT_FAULT"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


pytestmark = [  # litellm's own pydantic warnings, not ours
    pytest.mark.filterwarnings("ignore:Accessing the 'model_:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*ReadOnly.*:UserWarning"),
]


# ------------------------------------------------------------ Retry-After --


async def test_retry_after_is_waited_capped_then_the_call_succeeds(monkeypatch):
    """A 429 with ``Retry-After: 7`` from a real HTTP provider makes the litellm agent
    sleep 7 s (not its own millisecond backoff) before asking again; ``Retry-After:
    120`` is capped at MAX_BACKOFF_S; then the reply arrives. The sleeps are recorded,
    not slept."""
    from cockpit.agents import llm
    from tests import openai_server
    from tests.test_llm_agent import CONTEXT, GOOD, MODEL

    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(key, raising=False)
    waits = ["7", "120"]  # the Retry-After of each 429, in order

    class RetryAfterHandler(openai_server._Handler):
        def send_response(self, code, message=None):
            super().send_response(code, message)
            if code == 429:
                self.send_header("Retry-After", waits.pop(0))

    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds, *args, **kwargs):
        slept.append(seconds)
        await real_sleep(0)

    fake_asyncio = types.SimpleNamespace(**{n: getattr(asyncio, n) for n in dir(asyncio) if not n.startswith("_")})
    fake_asyncio.sleep = sleep
    monkeypatch.setattr(llm, "asyncio", fake_asyncio)  # only the agent's sleeps, not litellm's
    monkeypatch.setattr(openai_server, "_Handler", RetryAfterHandler)
    script = [openai_server.error(429), openai_server.error(429), openai_server.reply(GOOD)]
    with openai_server.OpenAIServer(script) as server:
        agent = llm.LiteLLMAgent(MODEL, api_base=server.api_base, timeout_s=5.0, backoff_s=0.001, max_retries=3)
        assert await agent.propose(CONTEXT) == GOOD
    assert len(server.requests) == 3 and waits == []
    assert slept == [7.0, llm.MAX_BACKOFF_S] and llm.MAX_BACKOFF_S == 30.0
    assert agent.last_usage.retries == 2


@pytest.mark.parametrize("header, pause", [("7", 7.0), ("120", 30.0), ("0.5", None)])
def test_a_retry_after_header_sets_the_backoff_capped_at_max_backoff(header, pause):
    """An error whose response carries Retry-After (the openai SDK's own 429 shape)
    sets the sleep before the retry: at least N seconds, at most MAX_BACKOFF_S; a
    shorter Retry-After leaves the agent's own exponential backoff (here 1 s jittered
    x0.5-1 for the first retry)."""
    import httpx
    import openai

    from cockpit.agents.llm import MAX_BACKOFF_S, LiteLLMAgent

    response = httpx.Response(429, headers={"Retry-After": header},
                              request=httpx.Request("POST", "http://127.0.0.1/v1/chat/completions"))
    exc = openai.RateLimitError("rate limited", response=response, body=None)
    agent = LiteLLMAgent("openai/cockpit-test-model", api_base="http://127.0.0.1:9/v1", backoff_s=1.0)
    for _ in range(20):  # the jitter is random: the rule holds for every draw
        got = agent._backoff(1, exc)
        if pause is None:
            assert 0.5 <= got <= 1.0
        else:
            assert got == pause
    assert MAX_BACKOFF_S == 30.0


# ------------------------------------------------------------------ sweep --

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def _spawn(extra: dict, new_session: bool = False) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != RUN_ID_ENV}
    env.update(extra)
    return subprocess.Popen(SLEEP, env=env, start_new_session=new_session)


def _started(procs: list[subprocess.Popen]) -> None:
    """Wait until every process has exec'd (its /proc environ is the child's own)."""
    deadline = time.monotonic() + 10
    for proc in procs:
        while time.monotonic() < deadline:
            try:
                if b"time.sleep(60)" in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
                    break
            except OSError:
                pass
            time.sleep(0.01)


def test_sweep_kills_exactly_the_runs_processes():
    """sweep(run_id, skip_group) SIGKILLs a live process whose environment holds
    COCKPIT_RUN_ID=run_id, and returns exactly those pids; not one with another id
    (even one that starts with run_id), none with the id under another variable's
    name, none without it, none in ``skip_group``."""
    run_id = f"gap-{uuid.uuid4().hex[:8]}"
    ours = [_spawn({RUN_ID_ENV: run_id}), _spawn({"A_FIRST": "1", RUN_ID_ENV: run_id, "Z_LAST": "2"})]
    others = [_spawn({RUN_ID_ENV: run_id + "0"}), _spawn({RUN_ID_ENV: "x" + run_id}),
              _spawn({"X" + RUN_ID_ENV: run_id}), _spawn({})]
    grouped = _spawn({RUN_ID_ENV: run_id}, new_session=True)  # its own group: pgid == its pid
    everyone = ours + others + [grouped]
    try:
        _started(everyone)
        assert sweep(run_id, skip_group=grouped.pid) == {p.pid for p in ours}
        assert [p.wait(timeout=5) for p in ours] == [-signal.SIGKILL] * 2
        assert [p.poll() for p in others + [grouped]] == [None] * 5
        assert sweep(run_id) == {grouped.pid}  # the group skipped above is a match without skip_group
        assert grouped.wait(timeout=5) == -signal.SIGKILL
        assert sweep(run_id) == set() and [p.poll() for p in others] == [None] * 4
    finally:
        for proc in everyone:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def test_sweep_never_kills_its_caller():
    """A process that itself carries COCKPIT_RUN_ID=run_id (as an engine started from a
    run's environment would) sweeps its child and survives; the child's pid is all it
    returns."""
    run_id = f"gap-{uuid.uuid4().hex[:8]}"
    code = ("import subprocess, sys, time\n"
            "from cockpit.training.sweep import sweep\n"
            f"child = subprocess.Popen({SLEEP!r}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(0.5)\n"
            f"killed = sweep({run_id!r})\n"
            "print(sorted(killed) == [child.pid], child.wait(timeout=5))\n")
    done = subprocess.run([sys.executable, "-c", code], env=tree_env({RUN_ID_ENV: run_id}), capture_output=True,
                          text=True, timeout=30, cwd=ROOT)
    child = int(done.stdout.split()[0])
    try:
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[1:] == ["True", str(-signal.SIGKILL)]
    finally:
        if marked("time.sleep(60)") and child in marked("time.sleep(60)"):
            os.kill(child, signal.SIGKILL)


# --------------------------------------------------- headless SIGINT/SIGHUP --


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_sigint_and_sighup_stop_a_headless_session_cleanly(tmp_path, sig):
    """Ctrl-C (SIGINT) or a closed terminal (SIGHUP) while a run trains ends
    ``cockpit --headless`` with status 0; the running experiment still ends as a
    results row and a record, the journal closes, and no process of the run is left
    (the training and its grandchild)."""
    source = (FAKES / "train.py").read_text().replace('MODE = "ok"', 'MODE = "hang_child"')
    ws = make_workspace(tmp_path / "ws", train_py=source)
    proc = subprocess.Popen(cockpit_argv() + ["--workspace", str(ws.path), "--headless", "--budget", "30",
                                              "--tag", "t1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tree_env())
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "step " not in (proc.stdout.readline() or "step "):
            pass
        for _ in range(50):
            if len(processes_in(ws.path)) == 2:
                break
            time.sleep(0.1)
        assert len(processes_in(ws.path)) == 2  # the training and its grandchild
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "session ended (stopped)" in out
    assert [(r.status, r.description) for r in read_rows(ws.results_tsv)] == [("crash", "baseline [stopped]")]
    records = [r for r in read_records(ws.records_jsonl) if r["kind"] == "experiment"]
    assert [(r["experiment"], r["status"], r["stopped"]) for r in records] == [(0, "crash", True)]
    assert unclosed(Journal(ws.path).read()[0]) == []
    for _ in range(20):
        if not processes_in(ws.path):
            break
        time.sleep(0.1)
    assert processes_in(ws.path) == []


# ------------------------------------------------------ the default hard limit --


def test_the_default_hard_limit_is_twice_the_budget_plus_30_s():
    """With SessionConfig's defaults (factor 2.0, grace 30 s), the Trainer kills a run
    of a 300 s budget after 630 s, and one of 0.2 s after 30.4 s."""
    from cockpit.engine.trainer import Trainer

    config = SessionConfig(tag="t1")
    assert (config.hard_limit_factor, config.hard_limit_grace_s) == (2.0, 30.0)
    for budget, limit in ((300.0, 630.0), (0.2, 30.4)):
        trainer = Trainer(None, config, types.SimpleNamespace(budget_s=budget), None, lambda e: None, dict)
        assert trainer.hard_limit_s() == pytest.approx(limit)


async def test_the_run_gets_the_hard_limit_of_the_session_budget(tmp_path, monkeypatch):
    """The limit that reaches the runner (cockpit.training.runner.Run) is the session's
    budget (here --budget 0.2) times 2 plus 30 s, under the default SessionConfig."""
    from cockpit.engine import trainer

    limits: list[float] = []

    class Recording(trainer.Run):
        def __init__(self, *args, **kwargs):
            limits.append(kwargs["hard_limit_s"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(trainer, "Run", Recording)
    ws = make_workspace(tmp_path / "ws")
    config = SessionConfig(tag="t1", max_experiments=1, settings=Settings(budget_s=0.2, pipeline=False, noise_runs=0))
    reason, _ = await run_session(ws, ScriptedAgent([]), config)
    assert reason == "max-experiments"
    assert limits == [pytest.approx(0.2 * 2.0 + 30.0)]


# --------------------------------------------- a full disk on records/journal --


def _full() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _check_nothing_lost(ws, events) -> None:
    """Three rows, each with its record, in order; every journal entry closed, each
    experiment's entries (open, train, row, close) whole and in order."""
    rows = read_rows(ws.results_tsv)
    assert [(r.status, r.description) for r in rows] == [
        ("keep", "baseline"), ("keep", "MATRIX_LR 0.04 -> 0.08"), ("discard", "MATRIX_LR 0.08 -> 0.16")]
    records = [r for r in read_records(ws.records_jsonl) if r["kind"] == "experiment"]
    assert [(r["experiment"], r["commit"], r["status"]) for r in records] == [
        (n, row.commit, row.status) for n, row in enumerate(rows)]
    entries, _ = Journal(ws.path).read()
    assert unclosed(entries) == []
    mine = [e for e in entries if e["entry"] in ("open", "train", "row", "close")]
    ids = [e["id"] for e in mine if e["entry"] == "open"]
    assert len(ids) == 3
    assert [(e["entry"], e["id"]) for e in mine] == [(k, i) for i in ids for k in ("open", "train", "row", "close")]
    assert PhaseChanged(2, "paused") in events


async def _resumed_after_a_pause(ws: Path, observe) -> tuple[list, list[str], list]:
    """A 3-row session that is resumed 0.1 s after each pause; returns its events, its
    error lines and what ``observe()`` saw at each pause."""
    at_pause = []

    def on_event(engine, event):
        if isinstance(event, PhaseChanged) and event.phase == "paused":
            at_pause.append(observe())
            asyncio.get_running_loop().call_later(0.1, engine.send, Resume())

    agent = ScriptedAgent({1: lr("0.04", "0.08"), 2: lr_to("0.16")})  # by idea: see engine_support
    reason, events = await run_session(ws, agent, fast_config(max_experiments=3), on_event)
    assert reason == "max-experiments"
    return events, [e.text for e in of_type(events, EngineMessage) if e.level == "error"], at_pause


async def test_a_full_disk_on_records_jsonl_pauses_and_nothing_is_lost(tmp_path, monkeypatch):
    """records.jsonl cannot be appended once (ENOSPC) for experiment 1: one error line
    "cannot write records.jsonl: ...", the engine pauses before the next run with
    experiment 1 not yet closed in the journal (its close waits behind the record);
    after Resume every row has its record and every journal entry closes, in order."""
    from cockpit.engine import bookkeeping

    ws = make_workspace(tmp_path / "ws")
    real, failures = bookkeeping.append_record, []

    def append_record(path, record):
        data = record if isinstance(record, dict) else record.__dict__
        if data.get("kind") == "experiment" and data.get("experiment") == 1 and not failures:
            failures.append(record)
            raise _full()
        return real(path, record)

    monkeypatch.setattr(bookkeeping, "append_record", append_record)
    events, errors, at_pause = await _resumed_after_a_pause(
        ws, lambda: [e["experiment"] for e in unclosed(Journal(ws.path).read()[0])])
    assert len(failures) == 1
    assert errors == ["cannot write records.jsonl: No space left on device; nothing is lost: it is written "
                      "when you resume"]
    assert at_pause == [[1]]  # the close of #1 was held back behind its record
    _check_nothing_lost(ws, events)


async def test_a_full_disk_on_the_journal_pauses_and_nothing_is_lost(tmp_path, monkeypatch):
    """The journal cannot be appended once (ENOSPC: experiment 1's ``row`` entry): one
    error line "cannot write the journal: ...", a pause with #1 still open (its close
    queued behind the failed entry, never before it); after Resume the journal's
    entries close, in order, and every row has its record."""
    ws = make_workspace(tmp_path / "ws")
    real, failures = Journal.append, []

    def append(self, entry, **fields):
        if entry == "row" and fields.get("experiment") == 1 and not failures:
            failures.append(entry)
            raise _full()
        return real(self, entry, **fields)

    def journal_at_pause():
        entries = Journal(ws.path).read()[0]
        return ([e["experiment"] for e in unclosed(entries)], [e["experiment"] for e in entries if e["entry"] == "row"])

    monkeypatch.setattr(Journal, "append", append)
    events, errors, at_pause = await _resumed_after_a_pause(ws, journal_at_pause)
    assert len(failures) == 1
    assert errors == ["cannot write the journal: No space left on device; nothing is lost: it is written "
                      "when you resume"]
    assert at_pause == [([1], [0])]
    _check_nothing_lost(ws, events)


# ------------------------------------------- a re-run left behind by a crash --


def _die_during_noise_rerun(ws: Path, marker: str, slow: Path) -> dict:
    """A headless session (2 noise-floor re-runs) SIGKILLed while its first re-run
    trains (made slow by FAKE_SLOW_FILE); returns the re-run's ``aux-train`` entry."""
    env = tree_env({"FAKE_SLOW_FILE": str(slow)})
    argv = cockpit_argv() + ["--workspace", str(ws), "--headless", "--tag", "t1", "--budget", "0.2",
                             "--max-experiments", "3", "--noise-runs", "2", "--no-pipeline",
                             "--run-command", f"{sys.executable} -u train.py {marker}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        for text in proc.stdout:
            if text.startswith("[exp 0] measuring-noise"):
                slow.touch()  # the re-run about to start is slow
            if text.startswith("[exp 0] training") and "rerun-1" in text:
                break
        deadline, aux = time.monotonic() + 20, []
        while time.monotonic() < deadline and not (aux and marked(marker)):
            entries = Journal(ws).read()[0]
            aux = [e for e in entries if e["entry"] == "aux-train"]
            time.sleep(0.05)
        assert aux and marked(marker), "the re-run never started"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return aux[0]


async def test_a_rerun_left_running_by_a_dead_engine_is_killed_at_the_next_start(tmp_path):
    """An engine killed (SIGKILL) while a noise-floor re-run trains leaves the re-run
    running (``aux-train`` without ``aux-close``); the next session's start kills its
    process group with a warning naming it, and that session runs to its end."""
    ws = make_workspace(tmp_path / "ws")
    marker, slow = f"gapmark-{uuid.uuid4().hex[:10]}", tmp_path / "slow"
    try:
        aux = _die_during_noise_rerun(ws.path, marker, slow)
        entries = Journal(ws.path).read()[0]
        assert aux["id"] not in {e["id"] for e in entries if e["entry"] == "aux-close"}
        assert marked(marker) != []  # the orphan outlived its engine (it sleeps 15 s a step)
        slow.unlink()
        config = fast_config(tag="t2", max_experiments=1, run_command=(sys.executable, "-u", "train.py"))
        reason, events = await run_session(ws, ScriptedAgent([]), config)
        assert reason == "max-experiments"
        warnings = [e.text for e in of_type(events, EngineMessage) if e.level == "warning"]
        assert (f"killed the run left behind by the dead engine ({aux['id']}, process group {aux['pid']})"
                in warnings)
        for _ in range(20):
            if not marked(marker):
                break
            await asyncio.sleep(0.1)
        assert marked(marker) == []
        assert [r.description for r in read_rows(ws.results_tsv)] == ["baseline", "baseline"]
        assert [e for e in of_type(events, RowLogged)][0].experiment == 0
        entries = Journal(ws.path).read()[0]
        assert unclosed(entries) == [] and {"t1", "t2"} <= {e["tag"] for e in entries if e["entry"] == "end"}
    finally:
        slow.unlink(missing_ok=True)
        for pid in marked(marker):
            os.kill(pid, signal.SIGKILL)
