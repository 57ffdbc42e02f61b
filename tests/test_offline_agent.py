"""The offline agent: valid single moves, never repeated, replies that apply cleanly."""

import re

import pytest

from cockpit.agents import make_agent
from cockpit.agents.base import AgentExhausted, ProposalContext
from cockpit.row import Row
from cockpit.agents.offline import (OfflineAgent, constraints_ok, literal_value, plan_moves, read_hyperparams,
                                    render_reply)
from cockpit.rules.edits import apply_reply

SOURCE = '''"""A train.py-like file."""
import torch

# ---- hyper-parameters ----
ASPECT_RATIO = 64  # model_dim = depth * ASPECT_RATIO
HEAD_DIM = 128  # attention head dimension
WINDOW_PATTERN = "SSSL"  # sliding window pattern
TOTAL_BATCH_SIZE = 2**19  # tokens per optimizer step
EMBEDDING_LR = 0.6  # AdamW lr of embeddings
MATRIX_LR = 0.04  # Muon lr
ADAM_BETAS = (0.8, 0.95)  # AdamW betas
WEIGHT_DECAY = 0.2  # cautious weight decay
WARMUP_RATIO = 0.0  # fraction of budget
WARMDOWN_RATIO = 0.5  # fraction of budget
DEPTH = 8  # transformer layers
DEVICE_BATCH_SIZE = 128  # sequences per micro-batch
MAX_SEQ_LEN = 2048  # tokens per sequence
SEED = 42  # random seed
EPS = 1e-10  # AdamW eps
ADAM_BETA2 = 0.95  # AdamW beta2
H100_BF16_PEAK_FLOPS = 989.5e12  # hardware constant, not a hyper-parameter


def f():
    INNER = 3
    return INNER
'''


def test_reads_numeric_upper_case_assignments():
    params = {p.name: (p.literal, p.kind) for p in read_hyperparams(SOURCE)}
    assert params["MATRIX_LR"] == ("0.04", "float")
    assert params["TOTAL_BATCH_SIZE"] == ("2**19", "pow")
    assert params["DEPTH"] == ("8", "int") and params["EPS"] == ("1e-10", "float")
    for skipped in ("WINDOW_PATTERN", "ADAM_BETAS", "INNER", "SEED", "H100_BF16_PEAK_FLOPS"):
        assert skipped not in params
    doubled = read_hyperparams("A = 1.0\nA = 2.0\nB = 3\n")
    assert [p.name for p in doubled] == ["B"]
    assert literal_value("2**19") == (524288.0, "pow") and literal_value("x") is None


def _values(source):
    return {p.name: p.value for p in read_hyperparams(source)}


def test_every_move_is_valid_and_applies_cleanly():
    moves = plan_moves(SOURCE, [])
    assert moves
    descriptions = [m.description for m in moves]
    assert "MATRIX_LR 0.04 -> 0.08" in descriptions and "MATRIX_LR 0.04 -> 0.02" in descriptions
    assert "TOTAL_BATCH_SIZE 2**19 -> 2**18" in descriptions and "DEPTH 8 -> 9" in descriptions
    assert "DEVICE_BATCH_SIZE 128 -> 64" in descriptions and "ASPECT_RATIO 64 -> 128" in descriptions
    assert not any(d.startswith("WARMUP_RATIO") for d in descriptions)         # 0 stays 0
    assert "WARMDOWN_RATIO 0.5 -> 1.0" in descriptions                          # a ratio may reach 1
    assert "DEVICE_BATCH_SIZE 128 -> 256" in descriptions                        # 256 * 2048 == 2**19
    assert {"ADAM_BETA2 0.95 -> 0.975", "ADAM_BETA2 0.95 -> 0.9"} <= set(descriptions)  # 1 - beta moves
    assert {"EPS 1e-10 -> 2e-10", "EPS 1e-10 -> 5e-11"} <= set(descriptions)
    for move in moves:
        proposal, new = apply_reply(render_reply(move), SOURCE)
        assert proposal.description == move.description
        before, after = _values(SOURCE), _values(new)
        changed = {k for k in before if before[k] != after[k]}
        assert changed == {move.param.name} and after[move.param.name] > 0
        assert "# " in new.splitlines()[SOURCE.splitlines().index(move.param.line)]  # comment kept


def test_batch_constraints_are_checked():
    assert constraints_ok({"TOTAL_BATCH_SIZE": 2**19, "DEVICE_BATCH_SIZE": 256, "MAX_SEQ_LEN": 2048})
    assert not constraints_ok({"TOTAL_BATCH_SIZE": 2**19, "DEVICE_BATCH_SIZE": 512, "MAX_SEQ_LEN": 2048})
    assert not constraints_ok({"TOTAL_BATCH_SIZE": 64, "DEVICE_BATCH_SIZE": 128})


def test_the_batch_moves_the_assert_would_refuse_are_not_proposed():
    # the CPU demo spent runs on both: 2048 tokens = 8 x 256 is exactly one pass
    cpu = {"TOTAL_BATCH_SIZE": 2048, "DEVICE_BATCH_SIZE": 8}
    assert not constraints_ok({**cpu, "DEVICE_BATCH_SIZE": 16}, cpu)
    assert not constraints_ok({**cpu, "TOTAL_BATCH_SIZE": 1024}, cpu)
    assert constraints_ok({**cpu, "DEVICE_BATCH_SIZE": 4}, cpu)  # two passes
    assert constraints_ok({**cpu, "TOTAL_BATCH_SIZE": 4096}, cpu)
    source = "TOTAL_BATCH_SIZE = 2048  # tokens\nDEVICE_BATCH_SIZE = 8  # sequences\n"
    moves = {m.description for m in plan_moves(source, ())}
    assert moves == {"TOTAL_BATCH_SIZE 2048 -> 4096", "DEVICE_BATCH_SIZE 8 -> 4"}
    descriptions = [m.description for m in plan_moves(SOURCE.replace("= 2048", "= 4096"), [])]
    assert "DEVICE_BATCH_SIZE 128 -> 256" not in descriptions          # 256 * 4096 > 2**19
    assert "TOTAL_BATCH_SIZE 2**19 -> 2**18" not in descriptions       # 2**18 < 128 * 4096
    assert "DEVICE_BATCH_SIZE 128 -> 64" in descriptions


async def test_never_repeats_a_move_until_exhausted():
    agent, source, history, seen = OfflineAgent(seed=3), SOURCE, [], set()
    for _ in range(200):
        try:
            reply = await agent.propose(ProposalContext(source, "", tuple(history)))
        except AgentExhausted:
            break
        proposal, new = apply_reply(reply, source)
        name, old, new_literal = re.match(r"(\w+) (\S+) -> (\S+)", proposal.description).groups()
        key = (name, literal_value(old)[0], literal_value(new_literal)[0])
        assert key not in seen
        seen.add(key)
        keep = name in ("MATRIX_LR", "DEPTH") and len(history) < 6  # a few moves are kept
        history.append(Row("", 1.0, 0.0, "keep" if keep else "discard", proposal.description))
        if keep:
            source = new
    else:
        pytest.fail("the agent never ran out of moves")
    assert len(seen) > 10


async def test_history_from_descriptions_survives_restarts():
    first = await OfflineAgent().propose(ProposalContext(SOURCE, ""))
    description = first.splitlines()[0].removeprefix("Description: ")
    again = await OfflineAgent().propose(ProposalContext(SOURCE, "", (Row("", 1.2, 0.0, "discard", description),)))
    assert again != first
    stopped = Row("", 0.0, 0.0, "crash", description + " [stopped]")
    assert await OfflineAgent().propose(ProposalContext(SOURCE, "", (stopped,))) == again


async def test_order_is_seeded_and_reask_takes_the_next_move():
    a0 = [m.description for m in plan_moves(SOURCE, [], seed=0)]
    assert a0 == [m.description for m in plan_moves(SOURCE, [], seed=0)]
    assert a0 != [m.description for m in plan_moves(SOURCE, [], seed=1)]
    agent = make_agent("offline")
    first = await agent.propose(ProposalContext(SOURCE, "", attempt=0))
    second = await agent.propose(ProposalContext(SOURCE, "", last_error="bad", attempt=1))
    assert a0[0] in first and a0[1] in second


async def test_reverse_of_a_kept_move_is_not_proposed():
    kept = (Row("", 1.0, 0.0, "keep", "MATRIX_LR 0.04 -> 0.08"),)
    source = SOURCE.replace("MATRIX_LR = 0.04", "MATRIX_LR = 0.08")
    descriptions = [m.description for m in plan_moves(source, kept)]
    assert "MATRIX_LR 0.08 -> 0.04" not in descriptions and "MATRIX_LR 0.08 -> 0.16" in descriptions
    with pytest.raises(ValueError, match="unknown agent"):
        make_agent("gpt-9")


def test_moves_on_the_real_train_py_apply_cleanly():
    hparams = pytest.importorskip("substrate.hparams")
    for profile in ("cpu", "h100", "tiny"):
        source = hparams.render_train_py(profile)
        moves = plan_moves(source, [])
        assert len(moves) > 10
        names = {m.param.name for m in moves}
        assert "MATRIX_LR" in names and not any("FLOPS" in n for n in names)
        for move in moves:
            assert apply_reply(render_reply(move), source)[0].description == move.description
