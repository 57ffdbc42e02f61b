"""A noise floor remembered, not re-bought (cockpit.engine.noise_memory): a second session
on the same harness, baseline train.py and device takes the first one's floor without a
re-run; a changed train.py, or ``reuse_noise`` off (``--noise-runs`` typed), measures."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from engine_support import ScriptedAgent, fast_config, lr, make_workspace, run_session
from test_noise import offsets

from cockpit.engine.noise_memory import age, floor_key, remembered
from cockpit.events import EngineMessage, NoiseMeasured, PhaseChanged
from cockpit.store.records import read_records


def floors(ws) -> list[dict]:
    return [r for r in read_records(ws.records_jsonl) if r.get("kind") == "noise-floor"]


async def session(ws, tag: str, **settings):
    config = fast_config(tag, max_experiments=2, noise_runs=3, **settings)
    return await run_session(ws, ScriptedAgent([lr("0.04", "0.02")]), config)


async def test_a_second_session_takes_the_floor_measured_on_the_same_harness_train_py_and_device(
        tmp_path, monkeypatch):
    ws = make_workspace(tmp_path / "ws")
    offsets(tmp_path, monkeypatch, 0.0, 0.01, -0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    _, first = await session(ws, "s1", reuse_noise=True)  # nothing to remember yet: measured
    assert [e.phase for e in first if isinstance(e, PhaseChanged)].count("measuring-noise") == 3
    _, second = await session(ws, "s2", reuse_noise=True)
    assert [e.phase for e in second if isinstance(e, PhaseChanged)].count("measuring-noise") == 0
    measured, remembered_floor = floors(ws)
    assert remembered_floor["runs"] == measured["runs"] and remembered_floor["remembered_from"] == "s1"
    assert remembered_floor["measured"] == measured["measured"] and remembered_floor["tag"] == "s2"
    assert [e.sigma for e in second if isinstance(e, NoiseMeasured)] == [pytest.approx(measured["sigma"])]
    said = [e.text for e in second if isinstance(e, EngineMessage) and "remembered from session s1" in e.text]
    assert said and "--noise-runs N measures again" in said[0]


async def test_a_typed_noise_runs_or_another_train_py_measures_again(tmp_path, monkeypatch):
    ws = make_workspace(tmp_path / "ws")
    offsets(tmp_path, monkeypatch, *([0.0, 0.01, -0.01, 0.0, 0.0] * 3))
    await session(ws, "s1", reuse_noise=True)
    _, typed = await session(ws, "s2", reuse_noise=False)  # --noise-runs typed
    assert [e.phase for e in typed if isinstance(e, PhaseChanged)].count("measuring-noise") == 3
    assert not any(f.get("remembered_from") for f in floors(ws))
    # another baseline train.py (its sha256 differs): not the same floor
    key = {k: floors(ws)[-1][k] for k in ("harness_sha256", "train_sha256", "device")}
    assert remembered(read_records(ws.records_jsonl), {**key, "train_sha256": "0" * 64}) is None
    assert remembered(read_records(ws.records_jsonl), {**key, "device": "elsewhere · sdpa"}) is None
    assert remembered(read_records(ws.records_jsonl), key)[1]["tag"] == "s2"  # the newest measured


def test_a_record_without_the_key_or_with_one_run_is_not_remembered():
    key = floor_key("h" * 64, "t" * 64, "box · sdpa")
    records = [{"kind": "noise-floor", "tag": "old", "runs": [1.1, 1.2]},  # before the key was recorded
               {"kind": "noise-floor", "tag": "one", "runs": [1.1], **key},
               {"kind": "noise-floor", "tag": "copy", "runs": [1.1, 1.2], "remembered_from": "x", **key}]
    assert remembered(records, key) is None
    assert remembered(records, floor_key("", "t" * 64, "box · sdpa")) is None


def test_age_in_words():
    now = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
    assert age("2026-12-07T09:00:00+00:00", now) == "3.0 h"
    assert age("2026-12-04T12:00:00+00:00", now) == "3.0 days"
    assert age("not a time", now) == "unknown"


async def test_the_report_says_where_a_remembered_floor_came_from(tmp_path, monkeypatch):
    from cockpit.tools.report import build_report, render_markdown

    ws = make_workspace(tmp_path / "ws")
    offsets(tmp_path, monkeypatch, *([0.0, 0.01, -0.01, 0.0, 0.0] * 2))
    await session(ws, "s1", reuse_noise=True)
    await session(ws, "s2", reuse_noise=True)
    report = build_report(ws.path, tag="s2")
    measured = floors(ws)[0]["measured"]
    assert (report.noise.remembered_from, report.noise.measured) == ("s1", measured)
    assert f"; remembered from session s1, measured {measured}" in render_markdown(report, "x.png")
