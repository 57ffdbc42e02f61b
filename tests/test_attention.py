"""The cockpit side of train.py's attention and failure contract (docs/CONTRACTS.md):
the ``attention`` backend in every record, the warning when it is not the
incumbent's (after a resume too), the ``FAIL:`` reason in a crash row, and
HF_HUB_OFFLINE=1 for runs of train.py only. Real git, the fake train.py made
to print the contract's lines, a scripted agent."""

from __future__ import annotations

import json

import pytest

from engine_support import (FAKES, LR_COMMENT, ScriptedAgent, blocks, fast_config, line, lr, make_workspace, mode,
                            of_type, run_session)

from cockpit.commands import Stop

from cockpit.events import EngineMessage, RowLogged
from cockpit.store.records import read_records
from cockpit.store.results import read_rows
from cockpit.store.repo import GitRepo
from cockpit.engine.resume import Resumable, restore
from cockpit.rules.run_env import hub_offline, run_environment

FA3 = "fa3:kernels-community/flash-attn3"
ATTENTION_COMMENT = "attention backend the fake reports"
DIVERGED = "loss diverged: 4.5e+02 at step 2 (more than 100)"


def fake_train(backend: str = FA3, extra: str = "") -> str:
    """The fake train.py printing ``attention: <ATTENTION> (fake)`` before its first step
    and ``attention: <ATTENTION>`` in its summary block (neither when ATTENTION is "");
    MODE "fail" prints ``FAIL: <DIVERGED>`` and exits 1; ``extra`` runs before the
    first line (it may set ATTENTION)."""
    source = (FAKES / "train.py").read_text()
    anchor = "STEPS = 5  # progress lines printed\n"
    source = source.replace(anchor, anchor + f'ATTENTION = "{backend}"  # {ATTENTION_COMMENT}\n' + extra +
                            'if ATTENTION:\n    print(f"attention: {ATTENTION} (fake)", flush=True)\n'
                            f'if MODE == "fail":\n    print("FAIL: {DIVERGED}", flush=True)\n    sys.exit(1)\n')
    return source + 'if ATTENTION:\n    print(f"attention:        {ATTENTION}")\n'


def attention(old: str, new: str) -> tuple[str, str]:
    return line("ATTENTION", f'"{old}"', ATTENTION_COMMENT), line("ATTENTION", f'"{new}"', ATTENTION_COMMENT)


def learning_rate(old: str, new: str) -> tuple[str, str]:
    return line("MATRIX_LR", old, LR_COMMENT), line("MATRIX_LR", new, LR_COMMENT)


def warnings_of(events: list) -> list[str]:
    return [e.text for e in of_type(events, EngineMessage) if e.level == "warning" and "attention backend" in e.text]


async def test_every_record_names_its_backend_and_another_backend_than_the_incumbents_is_warned(tmp_path):
    ws = make_workspace(tmp_path / "ws", train_py=fake_train(), toml='profile = "tiny"\nfix_attempts = 0\n')
    agent = ScriptedAgent([
        blocks("sdpa-masked, MATRIX_LR 0.04 -> 0.08", attention(FA3, "sdpa-masked"), learning_rate("0.04", "0.08")),
        mode("crash"),                                                 # crashes after its attention line
        blocks("say nothing, MATRIX_LR 0.08 -> 0.16", attention("sdpa-masked", ""), learning_rate("0.08", "0.16")),
        blocks("back to fa3, MATRIX_LR 0.08 -> 0.09", attention("sdpa-masked", FA3), learning_rate("0.08", "0.09")),
    ])
    reason, events = await run_session(ws, agent, fast_config(max_experiments=5))
    assert reason == "max-experiments"
    assert [r.status for r in read_rows(ws.results_tsv)] == ["keep", "keep", "crash", "discard", "discard"]
    records = [r for r in read_records(ws.records_jsonl) if r["kind"] == "experiment"]
    assert [r["attention"] for r in records] == [FA3, "sdpa-masked", "sdpa-masked", "", FA3]
    assert records[0]["summary"]["attention"] == FA3 and records[2]["summary"] == {}  # the crash: its first line
    # #1 is kept on another backend than #0; #4 (fa3) then differs from #1; the crash and the unknown say nothing
    assert warnings_of(events) == [
        f"#1: attention backend sdpa-masked differs from the incumbent's {FA3} (#0); their val_bpb are not comparable",
        f"#4: attention backend {FA3} differs from the incumbent's sdpa-masked (#1); their val_bpb are not comparable"]
    rows = of_type(events, RowLogged)
    first = next(i for i, e in enumerate(events) if isinstance(e, EngineMessage) and e.text.startswith("#1: attention"))
    assert events.index(rows[1]) < first  # said after its row


async def test_a_noise_re_run_on_another_backend_is_warned_and_recorded(tmp_path):
    flip = tmp_path / "flip"
    ws = make_workspace(tmp_path / "ws", train_py=fake_train(extra=f'if os.path.exists({str(flip)!r}):\n'
                                                                    '    ATTENTION = "sdpa"\n'))

    def flip_after_baseline(engine, event):
        if isinstance(event, RowLogged) and event.experiment == 0:
            flip.touch()  # the re-runs get sdpa: what a Hub call failing mid-session did

    reason, events = await run_session(ws, ScriptedAgent([]), fast_config(noise_runs=1), flip_after_baseline)
    assert reason == "agent-exhausted"
    reruns = [r for r in read_records(ws.records_jsonl) if r["kind"] == "rerun"]
    assert [r["attention"] for r in reruns] == ["sdpa"]
    assert warnings_of(events) == [f"noise floor: baseline re-run 1/1: attention backend sdpa differs from the "
                                   f"incumbent's {FA3} (#0); their val_bpb are not comparable"]


async def test_the_incumbents_backend_survives_a_resume(tmp_path):
    ws = make_workspace(tmp_path / "ws", train_py=fake_train())

    def stop_after_baseline(engine, event):
        if isinstance(event, RowLogged) and event.experiment == 0:
            engine.send(Stop())

    reason, _ = await run_session(ws, ScriptedAgent([None]), fast_config(max_experiments=3), stop_after_baseline)
    assert reason == "stopped" and len(read_rows(ws.results_tsv)) == 1
    agent = ScriptedAgent([blocks("sdpa", attention(FA3, "sdpa"), learning_rate("0.04", "0.08"))])
    reason, events = await run_session(ws, agent, fast_config(max_experiments=2, resume=True))
    assert reason == "max-experiments", [e.text for e in of_type(events, EngineMessage)]
    assert warnings_of(events) == [f"#1: attention backend sdpa differs from the incumbent's {FA3} (#0); their "
                                   "val_bpb are not comparable"]


def test_resume_reads_backends_and_old_records_without_them(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    old = {"kind": "experiment", "experiment": 0, "tag": "t1", "commit": "a000000", "status": "keep"}
    new = {**old, "experiment": 1, "commit": "b000000", "attention": "flex"}
    rerun = {"kind": "rerun", "experiment": 1, "tag": "t1", "commit": "c000000", "attention": "sdpa"}
    ws.records_jsonl.write_text("".join(json.dumps(r) + "\n" for r in (old, new, rerun)))
    restored = restore(ws.path, Resumable("t1", "autoresearch/t1", "", 0.2, "", "", 0))
    assert restored.backends == {"b000000": "flex"}


async def test_a_fail_line_is_the_crash_rows_reason_and_the_baseline_errors_message(tmp_path):
    ws = make_workspace(tmp_path / "ws", train_py=fake_train(), toml='profile = "tiny"\nfix_attempts = 0\n')
    reason, _ = await run_session(ws, ScriptedAgent([mode("fail")]), fast_config(max_experiments=2))
    assert reason == "max-experiments"
    rows = read_rows(ws.results_tsv)
    assert rows[1].status == "crash" and rows[1].description == f"mode fail [{DIVERGED}]"
    crash = [r for r in read_records(ws.records_jsonl) if r["kind"] == "experiment"][1]
    assert crash["description"] == f"mode fail [{DIVERGED}]" and crash["attention"] == FA3

    why = ("profile h100 needs CUDA: NVIDIA driver 535.104 is too old for torch 2.13.0 (built for CUDA 13.0,\t"
           "needs driver >= 580): install a newer driver, or torch from https://download.pytorch.org/whl/cu126")
    source = (FAKES / "train.py").read_text().replace(
        "lr_penalty =", f"print({'FAIL: ' + why!r}, flush=True)\nprint('[W] shutdown noise')\nsys.exit(1)\n"
                        "lr_penalty =", 1)
    ws = make_workspace(tmp_path / "ws2", train_py=source)
    reason, events = await run_session(ws, ScriptedAgent([]), fast_config())
    assert reason.startswith("error: the baseline run crashed (exit 1): FAIL: profile h100 needs CUDA: NVIDIA "
                             "driver 535.104") and "shutdown noise" not in reason
    row = read_rows(ws.results_tsv)[0]
    assert row.status == "crash" and row.description.startswith("baseline [profile h100 needs CUDA: NVIDIA driver")
    reason_kept = row.description.removeprefix("baseline [").removesuffix("]")
    assert len(reason_kept) == 100 and reason_kept.endswith("…") and "\t" not in reason_kept
    assert reason_kept[:-1] in " ".join(why.split())


@pytest.mark.parametrize("user_value", [None, "0"])
async def test_runs_of_train_py_are_offline_on_the_hub_and_prepare_is_not(tmp_path, monkeypatch, user_value):
    if user_value is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", user_value)
    seen = tmp_path / "seen.jsonl"
    write = (f"import json as _json, os as _os\nwith open({str(seen)!r}, 'a') as _out:\n"
             "    _out.write(_json.dumps([_os.path.basename(__file__), _os.environ.get('HF_HUB_OFFLINE')]) + '\\n')\n")
    ws = make_workspace(tmp_path / "ws", train_py=write + (FAKES / "train.py").read_text())
    ws.prepare_py.write_text(write + ws.prepare_py.read_text())
    GitRepo(ws.path).commit_file("prepare.py", "prepare.py writes what it sees")
    reason, _ = await run_session(ws, ScriptedAgent([lr("0.04", "0.08")]), fast_config(max_experiments=2,
                                                                                      noise_runs=1))
    assert reason == "max-experiments"
    runs = [json.loads(text) for text in seen.read_text().splitlines()]
    train = "1" if user_value is None else user_value
    # the TIME_BUDGET probe (it imports prepare.py; it runs under --budget too: the clock),
    # prepare.py, the baseline, its noise re-run, experiment 1
    assert runs == [["prepare.py", user_value], ["prepare.py", user_value], ["train.py", train],
                    ["train.py", train], ["train.py", train]]
    assert hub_offline({"HF_HUB_OFFLINE": "0"}) == {} and hub_offline({}) == {"HF_HUB_OFFLINE": "1"}
    assert run_environment(environ={"HF_HUB_OFFLINE": "0"})["HF_HUB_OFFLINE"] == "0"
