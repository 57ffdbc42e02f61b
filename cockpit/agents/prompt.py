"""The prompt an LLM agent sees: OpenAI chat messages built from a ProposalContext. Pure.

Stateless: rebuilt from scratch for every ask (program.md as the engine read it
from disk just now, the current train.py, the whole history), so a re-ask or a
resumed session needs no conversation state.

- system: program.md as given, then a short fixed statement of the reply format.
- user: the current train.py in full; the experiment history, one line per
  results row (``#n status val_bpb description``, n counted from 0 = the first
  row) and the best kept row; the diffs of recent kept changes; on a fix
  attempt the crash log tail; the human's steering notes (the newest 20, each
  at most 2,000 characters: cockpit.agents.base's MAX_STEERING_NOTES and
  MAX_NOTE_CHARS; the engine refuses a longer note); the proposals the human
  vetoed (at most 20, capped by the engine); on a re-ask the error of the
  previous reply, addressed to the model.

When ``count_tokens(messages)`` exceeds ``max_input_tokens`` minus a reserve
for the reply, history rows are dropped oldest-first (the prompt says how many),
then kept diffs oldest-first. program.md, train.py, the crash tail, the steering
notes, the vetoed proposals, the runs in flight and the previous error are never trimmed
to fit (the notes are capped in number and length, the vetoed proposals in number); if the
prompt still does not fit, ``build_messages`` raises ValueError.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from cockpit.agents.base import MAX_NOTE_CHARS, MAX_STEERING_NOTES, ProposalContext
from cockpit.row import Row
from cockpit.rules.edits import EDITABLE_FILE, FORMAT_REMINDER

REPLY_RESERVE_TOKENS = 4096  # tokens kept free for the reply (at most a quarter of the window)

REPLY_FORMAT = (
    "\n\n---\n## Reply format (the cockpit parses your reply mechanically)\n"
    f"{FORMAT_REMINDER} Only `{EDITABLE_FILE}` may be edited. Each SEARCH text must match "
    "the current file exactly and only once; keep SEARCH blocks small. Propose one idea per reply."
)

CountTokens = Callable[[list[dict]], int]


def build_messages(
    context: ProposalContext,
    *,
    max_input_tokens: Optional[int],
    count_tokens: CountTokens,
    reserve_tokens: Optional[int] = None,
) -> list[dict]:
    """The chat messages (``[{"role": "system", ...}, {"role": "user", ...}]``) for ``context``.

    ``max_input_tokens``: the model's input window in tokens (None: no trimming).
    ``count_tokens``: tokens of a message list (the model's tokenizer or an estimate).
    ``reserve_tokens``: tokens left free for the reply (default
    ``min(REPLY_RESERVE_TOKENS, max_input_tokens // 4)``).
    Raises ValueError when the prompt does not fit even with no history rows and
    no kept diffs (the message gives both token counts).
    """
    history, diffs = len(context.history), len(context.kept_diffs)
    if max_input_tokens is None:
        return _render(context, 0, 0)
    reserve = min(REPLY_RESERVE_TOKENS, max_input_tokens // 4) if reserve_tokens is None else reserve_tokens
    budget = max_input_tokens - reserve

    def fits(omit_rows: int, omit_diffs: int) -> bool:
        return count_tokens(_render(context, omit_rows, omit_diffs)) <= budget

    if fits(0, 0):
        return _render(context, 0, 0)
    if history and fits(history, 0):
        return _render(context, _least(1, history, lambda k: fits(k, 0)), 0)
    if diffs and fits(history, diffs):
        return _render(context, history, _least(1, diffs, lambda k: fits(history, k)))
    needed = count_tokens(_render(context, history, diffs))
    raise ValueError(
        f"the prompt needs {needed:,} tokens even without history rows and kept diffs, but only "
        f"{budget:,} fit ({max_input_tokens:,}-token window minus {reserve:,} reserved for the reply): "
        "shorten program.md or train.py, or use a model with a larger context window"
    )


def _least(low: int, high: int, ok: Callable[[int], bool]) -> int:
    """The least k in [low, high] with ok(k), given ok(high) and ok monotone in k."""
    while low < high:
        middle = (low + high) // 2
        if ok(middle):
            high = middle
        else:
            low = middle + 1
    return high


def _render(context: ProposalContext, omit_rows: int, omit_diffs: int) -> list[dict]:
    """The messages with the ``omit_rows`` oldest history rows and ``omit_diffs``
    oldest kept diffs left out."""
    sections = [
        f"## Current {EDITABLE_FILE}\n```python\n{context.train_py.rstrip()}\n```",
        history_section(context.history, omit_rows),
        _diffs_section(context.kept_diffs, omit_diffs),
        _crash_section(context),
        steering_section(context.steering),
        _vetoed_section(context.vetoed),
        _in_flight_section(context.in_flight),
        _error_section(context.last_error),
        _task_line(context),
    ]
    user = "\n\n".join(s for s in sections if s)
    return [
        {"role": "system", "content": context.program_md.rstrip() + REPLY_FORMAT},
        {"role": "user", "content": user},
    ]


def history_line(number: int, row: Row) -> str:
    """``#n status val_bpb description`` (val_bpb ``-`` for a crash), on one line."""
    value = "-" if row.score is None else f"{row.score:.6f}"
    description = " ".join(row.description.split())
    return f"#{number} {row.status} {value} {description}"


def history_section(rows: Sequence[Row], omit: int = 0) -> str:
    """The history section: every row but the ``omit`` oldest, plus the best kept row."""
    if not rows:
        return "## Experiment history\n(no experiments yet)"
    lines = [f"## Experiment history ({len(rows)} rows, oldest first; lower val_bpb is better)"]
    kept = [(i, r) for i, r in enumerate(rows) if r.status == "keep" and r.val_bpb > 0]
    if kept:
        number, best = min(kept, key=lambda item: item[1].val_bpb)
        lines.append(f"Best kept so far: {history_line(number, best)}")
    if omit:
        lines.append(f"({omit} oldest rows omitted to fit the context window)")
    lines.extend(history_line(i, row) for i, row in enumerate(rows) if i >= omit)
    return "\n".join(lines)


def _diffs_section(diffs: Sequence[str], omit: int) -> str:
    if not diffs:
        return ""
    lines = ["## Recent kept changes (unified diffs, oldest first)"]
    if omit:
        lines.append(f"({omit} oldest diffs omitted to fit the context window)")
    lines.extend(f"```diff\n{diff.rstrip()}\n```" for diff in diffs[omit:])
    return "\n".join(lines)


def _crash_section(context: ProposalContext) -> str:
    if context.fix_attempt < 1 or not context.crash_log_tail:
        return ""
    limit = context.max_fix_attempts
    attempt = f"attempt {context.fix_attempt} of {limit}" if limit else f"attempt {context.fix_attempt}"
    return (
        f"## The previous experiment crashed: fix it ({attempt})\n"
        f"Fix this crash of the same idea: keep the idea, change only what makes it fail. "
        f"The last lines of its log:\n```\n{context.crash_log_tail.rstrip()}\n```"
    )


def steering_section(notes: Sequence[str], limit: int = MAX_STEERING_NOTES) -> str:
    """The steering notes section: the newest ``limit`` notes, oldest first, each on
    one line and cut at MAX_NOTE_CHARS characters (the engine refuses longer ones;
    a note restored from an older session may still be one); "" without notes."""
    if not notes:
        return ""
    shown = list(notes)[-limit:] if limit > 0 else []
    lines = ["## Steering notes from the human (oldest first; follow the latest when they conflict)"]
    if len(shown) < len(notes):
        lines.append(f"({len(notes) - len(shown)} older notes left out: only the newest {limit} are shown)")
    for note in shown:
        text = " ".join(note.split())
        lines.append(f"- {text[:MAX_NOTE_CHARS]} [note cut]" if len(text) > MAX_NOTE_CHARS else f"- {text}")
    return "\n".join(lines)


def _vetoed_section(descriptions: Sequence[str]) -> str:
    if not descriptions:
        return ""
    body = "\n".join(f"- {' '.join(text.split())}" for text in descriptions)
    return f"## Proposals the human vetoed before they ran (do not propose them again)\n{body}"


def _in_flight_section(descriptions: Sequence[str]) -> str:
    if not descriptions:
        return ""
    body = "\n".join(f"- {' '.join(text.split())}" for text in descriptions)
    return ("## Training right now (results not known yet)\n"
            f"{body}\n"
            "Propose a different change. Your edit applies to the train.py shown above (the best kept one); "
            "if the run above is kept, your edit is re-applied onto its train.py, so keep your SEARCH text "
            "away from the lines it changes.")


def _error_section(last_error: Optional[str]) -> str:
    if not last_error:
        return ""
    return (
        "## Your previous reply was rejected\n"
        f"{last_error.strip()}\n"
        "Answer again with a complete reply in the format above."
    )


def _task_line(context: ProposalContext) -> str:
    if context.fix_attempt >= 1 and context.crash_log_tail:
        return f"Reply with the fix for experiment {context.experiment}."
    return f"Reply with your proposal for experiment {context.experiment}."
