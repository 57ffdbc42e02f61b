"""A session through litellm whose model never answers in the asked-for format.

Our loopback OpenAI server answers only in the shapes real models drift into:
an unlabeled SEARCH/REPLACE block, a unified diff, a whole new train.py, a
CRLF reply, and a ``<think>`` block holding a draft edit before the real one.
The real ``cockpit`` command must keep the good edits (fake val_bpb =
1 + |log2(MATRIX_LR / 0.08)| / 10, best at 0.08) and end with train.py valid.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from engine_support import DEPTH_COMMENT, FAKES, LR_COMMENT, make_workspace
from openai_server import OpenAIServer, reply as answer

from cockpit.rules.edits import unified_diff
from cockpit.store.records import read_records
from cockpit.store.results import read_rows

pytestmark = pytest.mark.slow

SOURCE = (FAKES / "train.py").read_text()


def lr_line(value: str) -> str:
    return f"MATRIX_LR = {value}  # {LR_COMMENT}"


def with_lr(value: str, source: str = SOURCE) -> str:
    return source.replace(lr_line("0.04"), lr_line(value))


def script() -> list:
    unlabeled = (f"Lower the distance to the optimum: LR 0.04 -> 0.06\n\n```\n<<<<<<< SEARCH\n{lr_line('0.04')}\n"
                 f"=======\n{lr_line('0.06')}\n>>>>>>> REPLACE\n```\n")
    diff = "```diff\n" + unified_diff(with_lr("0.06"), with_lr("0.07")) + "```\n"
    whole = "Here is the full file:\n\n```python\n" + with_lr("0.08") + "```\n"
    depth = (f"Description: one more layer\r\n\r\ntrain.py\r\n```python\r\n<<<<<<< SEARCH\r\n"
             f"DEPTH = 4  # {DEPTH_COMMENT}\r\n=======\r\nDEPTH = 5  # {DEPTH_COMMENT}\r\n>>>>>>> REPLACE\r\n```\r\n")
    think = (f"<think>\nDouble it?\n<<<<<<< SEARCH\n{lr_line('0.08')}\n=======\n{lr_line('0.16')}\n>>>>>>> REPLACE\n"
             f"No, a small nudge is safer.\n</think>\n\n<<<<<<< SEARCH\n{lr_line('0.08')}\n=======\n"
             f"{lr_line('0.09')}\n>>>>>>> REPLACE\n")
    return [answer(unlabeled), answer(diff), answer(whole), answer(depth), answer(think)]


def test_a_session_on_drifting_replies_keeps_the_good_edits(tmp_path):
    with OpenAIServer(script(), lifetime_s=200) as server:
        toml = (f'profile = "tiny"\n\n[agent]\nname = "litellm"\nmodel = "openai/test-model"\n'
                f'api_base = "{server.api_base}"\ntimeout_s = 30\nmax_retries = 1\n')
        ws = make_workspace(tmp_path / "ws", toml=toml)
        cockpit = Path(sys.executable).parent / "cockpit"
        done = subprocess.run([str(cockpit), "--workspace", str(ws.path), "--headless", "--max-experiments", "6",
                               "--budget", "1", "--tag", "drift", "--no-pipeline"],
                              capture_output=True, text=True, timeout=180)
        asked = len(server.requests)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert asked == 5  # not one re-ask: every reply was taken as it came
    rows = read_rows(ws.results_tsv)
    assert [r.status for r in rows] == ["keep", "keep", "keep", "keep", "discard", "discard"]
    assert [r.description for r in rows] == [
        "baseline", "Lower the distance to the optimum: LR 0.04 -> 0.06", "MATRIX_LR 0.06 -> 0.07",
        "MATRIX_LR 0.07 -> 0.08", "one more layer", "MATRIX_LR 0.08 -> 0.09"]
    train_py = (ws.path / "train.py").read_text()
    ast.parse(train_py)
    assert train_py == with_lr("0.08")
    records = [r for r in read_records(ws.records_jsonl) if r.get("kind") == "experiment"]
    assert "<think>" in records[5]["replies"][0]  # the reasoning is kept in the record
    assert "0.16" not in records[5]["diff"]  # and its draft edit never applied
