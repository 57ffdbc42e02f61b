"""The prompt builder: what the model sees, and trimming under a small window (pure)."""

from __future__ import annotations

import pytest

from cockpit.agents.base import ProposalContext
from cockpit.row import Row
from cockpit.agents.prompt import REPLY_FORMAT, build_messages, history_line

TRAIN_PY = "# train.py\nMATRIX_LR = 0.04  # Muon learning rate\nDEPTH = 4\n" + "x = 1\n" * 40
PROGRAM_MD = "# program\nLowest val_bpb wins. Simplicity criterion applies.\n"


def chars(messages: list[dict]) -> int:
    """A deterministic token count: one token per 4 characters."""
    return sum(len(m["content"]) for m in messages) // 4


def rows(n: int) -> tuple[Row, ...]:
    return tuple(Row("", 1.5 - i / 1000, 0.0, "keep" if i % 3 == 0 else "discard", f"idea number {i}")
                 for i in range(n))


def context(**changes) -> ProposalContext:
    return ProposalContext(train_py=TRAIN_PY, program_md=PROGRAM_MD, **changes)


def text(messages: list[dict]) -> str:
    return "\n".join(m["content"] for m in messages)


def test_system_is_program_plus_format_and_user_holds_the_rest():
    ctx = context(history=rows(3), kept_diffs=("--- a\n+++ b\n-X = 1\n+X = 2",), steering=("try a deeper model",),
                  experiment=3)
    system, user = build_messages(ctx, max_input_tokens=None, count_tokens=chars)
    assert system["role"] == "system" and user["role"] == "user"
    assert system["content"].startswith(PROGRAM_MD.rstrip()) and system["content"].endswith(REPLY_FORMAT)
    assert "Description:" in system["content"] and "SEARCH" in system["content"]
    assert TRAIN_PY.rstrip() in user["content"]
    assert "#0 keep 1.500000 idea number 0" in user["content"]
    assert "#2 discard 1.498000 idea number 2" in user["content"]
    assert "Best kept so far: #0 keep 1.500000" in user["content"]
    assert "+X = 2" in user["content"] and "- try a deeper model" in user["content"]
    assert "crash" not in user["content"].lower() and "rejected" not in user["content"]
    assert "vetoed" not in user["content"]
    _, user = build_messages(context(vetoed=("DEPTH 4 -> 8",)), max_input_tokens=None, count_tokens=chars)
    assert ("## Proposals the human vetoed before they ran (do not propose them again)\n- DEPTH 4 -> 8"
            in user["content"])


def test_history_line_format():
    assert history_line(7, Row("", 0.0, 0.0, "crash", "OOM\nat depth 12")) == "#7 crash - OOM at depth 12"
    assert history_line(1, Row("", 1.2345678, 0.0, "discard", "x")) == "#1 discard 1.234568 x"


def test_fix_attempt_shows_the_crash_tail_and_a_reask_the_error():
    ctx = context(fix_attempt=2, max_fix_attempts=3, crash_log_tail="Traceback\nRuntimeError: shapes mismatch",
                  last_error="SEARCH text not found in train.py")
    user = build_messages(ctx, max_input_tokens=None, count_tokens=chars)[1]["content"]
    assert "Fix this crash of the same idea" in user and "attempt 2 of 3" in user
    assert "RuntimeError: shapes mismatch" in user
    assert "Your previous reply was rejected" in user and "SEARCH text not found in train.py" in user
    plain = build_messages(context(fix_attempt=0, crash_log_tail="old tail"), max_input_tokens=None,
                           count_tokens=chars)[1]["content"]
    assert "old tail" not in plain


def test_fits_untrimmed_when_the_window_is_large():
    ctx = context(history=rows(20))
    assert build_messages(ctx, max_input_tokens=100_000, count_tokens=chars) == \
        build_messages(ctx, max_input_tokens=None, count_tokens=chars)


def test_history_is_trimmed_oldest_first_and_as_little_as_needed():
    ctx = context(history=rows(200), kept_diffs=("+a",) * 2)
    full = chars(build_messages(ctx, max_input_tokens=None, count_tokens=chars))
    window, reserve = full, 100  # room for the prompt minus ~100 tokens: some rows must go
    messages = build_messages(ctx, max_input_tokens=window, count_tokens=chars, reserve_tokens=reserve)
    user = messages[1]["content"]
    assert chars(messages) <= window - reserve
    omitted = int(user.split(" oldest rows omitted")[0].rsplit("(", 1)[1])
    assert 0 < omitted < 200
    assert f"#{omitted - 1} " not in user and f"#{omitted} " in user and "#199 " in user
    assert TRAIN_PY.rstrip() in user and messages[0]["content"].startswith(PROGRAM_MD.rstrip())
    assert user.count("```diff") == 2  # diffs only go after the whole history
    one_less = build_messages(ctx, max_input_tokens=window + 60, count_tokens=chars, reserve_tokens=reserve)
    assert f"({omitted} oldest" not in one_less[1]["content"]  # a larger window keeps more rows


def test_kept_diffs_go_oldest_first_after_all_history():
    diffs = tuple(f"--- a/train.py\n+++ b/train.py\n+DIFF_{i} = {i}\n" + "+pad\n" * 50 for i in range(4))
    ctx = context(history=rows(30), kept_diffs=diffs)
    fixed = chars(build_messages(context(), max_input_tokens=None, count_tokens=chars))
    window = fixed + 150  # one or two diffs fit besides the fixed parts; the history (~230 tokens) cannot
    user = build_messages(ctx, max_input_tokens=window, count_tokens=chars, reserve_tokens=0)[1]["content"]
    assert "(30 oldest rows omitted" in user and "#29 " not in user
    assert "oldest diffs omitted" in user and "DIFF_3" in user and "DIFF_0" not in user


def test_train_py_and_program_are_never_trimmed_and_too_long_raises():
    ctx = context(history=rows(50), steering=("note",), last_error="bad reply")
    fixed = chars(build_messages(context(steering=("note",), last_error="bad reply"), max_input_tokens=None,
                                 count_tokens=chars))
    with pytest.raises(ValueError, match="even without history rows and kept diffs"):
        build_messages(ctx, max_input_tokens=fixed - 50, count_tokens=chars, reserve_tokens=0)
    fitted = build_messages(ctx, max_input_tokens=fixed + 40, count_tokens=chars, reserve_tokens=0)
    assert TRAIN_PY.rstrip() in fitted[1]["content"] and PROGRAM_MD.rstrip() in fitted[0]["content"]
    assert "bad reply" in fitted[1]["content"] and "- note" in text(fitted)


def test_default_reserve_is_kept_free_for_the_reply():
    ctx = context(history=rows(100))
    full = chars(build_messages(ctx, max_input_tokens=None, count_tokens=chars))
    window = full + 10  # fits without a reserve, not with a quarter of the window reserved
    messages = build_messages(ctx, max_input_tokens=window, count_tokens=chars)
    assert chars(messages) <= window - window // 4
    assert "oldest rows omitted" in messages[1]["content"]


def test_count_tokens_is_called_a_logarithmic_number_of_times():
    calls = []

    def counting(messages):
        calls.append(1)
        return chars(messages)

    ctx = context(history=rows(1000))
    full = chars(build_messages(ctx, max_input_tokens=None, count_tokens=chars))
    build_messages(ctx, max_input_tokens=full // 2, count_tokens=counting, reserve_tokens=0)
    assert len(calls) <= 15
