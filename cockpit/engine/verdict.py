"""The verdict on a finished run: its status, the mark its row's description gets,
its noise judgement; and the warning when its attention backend is not the incumbent's.

Pure functions of the run's result and summary, the best kept val_bpb, the keep
rule (cockpit.rules.noise) and the human's verdict; cockpit.engine.bookkeeping
records what they decide.
"""

from __future__ import annotations

from typing import Optional

from cockpit.engine.session import SessionState, judge_run
from cockpit.rules.noise import Judgement, KeepRule, noise_mark
from cockpit.rules.summary import fail_reason
from cockpit.store.repo import short
from cockpit.store.results import clean_description
from cockpit.training.runner import RunResult

MAX_FAIL_REASON = 100  # characters of a run's ``FAIL:`` reason kept in a crash row's description
CRASH_NOT_KEPT = "force-keep: the run crashed (no val_bpb), so it cannot be kept"


def verdict(result: RunResult, summary: dict, best: Optional[float], rule: KeepRule, human: str = "",
            confirm: tuple = ()) -> tuple[str, str, Optional[Judgement], str]:
    """(status, description mark, noise judgement, warning) of a finished run. ``human``
    "veto": discard, " [vetoed]"; "abort" (early abort): discard, " [aborted
    early]"; "force-keep": a discard becomes a keep, " [forced]" (a crash stays
    a crash, with the warning CRASH_NOT_KEPT; a keep needs no force). Otherwise a
    finite run is judged against ``best`` by ``rule`` (cockpit.rules.noise, with
    ``confirm``'s val_bpb averaged in): an improvement within the noise is a discard
    " [within noise]", a confirmed keep " [confirmed]". A forced keep is marked
    " [forced]" when that rule would have discarded it. A crash whose output has a
    ``FAIL: <reason>`` line says why: " [<reason>]" (one line, at most
    MAX_FAIL_REASON characters), after " [stopped]" or " [timed out]"."""
    status, judged = judge_run(result, summary, best, rule, confirm)
    if human == "veto":
        return "discard", " [vetoed]", judged, ""
    if human == "abort":
        return "discard", " [aborted early]", judged, ""
    if human == "force-keep" and status == "discard":
        return "keep", " [forced]", judged, ""
    warning = CRASH_NOT_KEPT if human == "force-keep" and status == "crash" else ""
    mark = noise_mark(status, judged)
    if mark:
        return status, mark, judged, warning
    mark = " [stopped]" if result.stopped else " [timed out]" if result.timed_out else ""
    reason = fail_reason(result.text) if status == "crash" else ""
    return status, mark + (f" [{clip(clean_description(reason), MAX_FAIL_REASON)}]" if reason else ""), judged, \
        warning


def attention_warning(state: SessionState, who: str, backend: str) -> str:
    """The one-line warning (``who`` first: "#7", a re-run's label) when a
    finished run's attention ``backend`` is not the incumbent's (the last kept
    experiment's, ``state.backends``): their val_bpb are not comparable
    (another kernel trains another number of steps in the same budget). ""
    when they agree, when either is unknown ("") and before the first keep."""
    kept = state.kept
    theirs = state.backends.get(short(kept[-1].commit), "") if kept else ""
    if not backend or not theirs or backend == theirs:
        return ""
    return (f"{who}: attention backend {backend} differs from the incumbent's {theirs} "
            f"(#{kept[-1].experiment}); their val_bpb are not comparable")


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, "…" marking a cut."""
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"
