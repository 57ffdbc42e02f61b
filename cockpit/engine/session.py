"""A session's settings, its mutable state, and the keep / discard / crash rule.

The rule itself (noise floor, threshold, confirming re-runs) is
cockpit.rules.noise.KeepRule; ``judge_run`` adds what makes a run a crash. The
session's running best (``SessionState.best``, ``last_kept``, ``kept``) is
folded by cockpit.rules.standing, the same function the cockpit's staircase and
status bar and ``cockpit report`` use, so the engine and every view agree
after keeps, forced keeps, reverts and crashes."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Optional, Sequence

from cockpit.row import Row
from cockpit.rules.budget_clock import WALL, BudgetClock
from cockpit.rules.noise import Judgement, KeepRule
from cockpit.training.runner import RunResult
from cockpit.store.programs import ProgramSource
from cockpit.store.settings import Settings
from cockpit.rules.standing import Ladder
from cockpit.rules.summary import summary_val_bpb
from cockpit.store.workspace import prepare_command

if TYPE_CHECKING:  # proposing imports this module
    from cockpit.engine.proposing import Asked


class SessionError(RuntimeError):
    """The session cannot go on (baseline crashed, prepare failed, agent keeps failing)."""


@dataclass(frozen=True)
class SessionConfig:
    """One session: its tag, what it runs, its limits, and its settings."""

    tag: str
    """Session tag; the run branch is ``autoresearch/<tag>`` and must not exist."""
    max_experiments: Optional[int] = None
    """Stop after this many results rows, baseline included (None = run forever)."""
    run_command: tuple[str, ...] = (sys.executable, "-u", "train.py")
    """argv of one training run, run in the workspace."""
    prepare_command: tuple[str, ...] = tuple(prepare_command())
    """argv that prepares data before the baseline (idempotent, fast when cached);
    not run for an upstream-layout repository."""
    hard_limit_factor: float = 2.0
    """A run is killed (crash) after ``factor x budget + grace`` seconds."""
    hard_limit_grace_s: float = 30.0
    """Seconds added to the hard limit for start-up and evaluation."""
    kill_grace_s: float = 5.0
    """Seconds between SIGTERM and SIGKILL of a run's process group."""
    max_reasks: int = 3
    """Re-asks after an invalid reply before the proposal is dropped (1 + 3 asks)."""
    max_consecutive_drops: int = 5
    """End the session with an error after this many dropped proposals in a row."""
    settings: Settings = field(default_factory=Settings)
    """cockpit.toml's settings with the typed flags applied (cockpit.store.settings):
    budget, program, fix attempts, gate, pipeline, noise floor, keep threshold, early abort."""
    resume_upstream: bool = False
    """With ``resume``: session ``tag`` is upstream autoresearch's (results.tsv and its
    branch ``autoresearch/<tag>``, no journal): its rows are imported into the view and
    the ratchet goes on from the branch head, appending to the same results.tsv."""
    resume: bool = False
    """Continue session ``tag`` where its engine died or was stopped (cockpit.engine.resume):
    its branch, rows, best, noise floor; no baseline re-run. False = a new session."""
    reuse_noise: bool = False
    """A new session takes the newest noise floor measured on the same harness, baseline
    train.py and device instead of measuring (cockpit.engine.noise_memory); the CLI sets
    it unless ``--noise-runs`` is typed. False = measure."""

    @property
    def branch(self) -> str:
        return f"autoresearch/{self.tag}"


@dataclass(frozen=True)
class SessionFacts:
    """What start-up established, fixed for the rest of the session
    (cockpit.engine.startup ``SessionStart.start`` returns it): the ``tag`` and run
    ``branch``, ``base`` (the full hash the branch started at), ``budget_s`` (the time
    budget of every run, seconds: --budget, cockpit.toml, prepare.py's TIME_BUDGET, or
    a resumed session's own), ``harness_sha256`` (of prepare.py, checked before every
    run), ``program`` (where the program.md text is read from, again before every
    proposal), whether the session was ``resumed``, and the ``clock`` the budget and
    so the hard limit are counted on (cockpit.rules.budget_clock)."""

    tag: str
    branch: str
    base: str
    budget_s: float
    harness_sha256: str
    program: ProgramSource
    resumed: bool = False
    clock: BudgetClock = WALL


STRICT = KeepRule()  # upstream's rule: keep iff strictly lower (no noise floor, no threshold)


def judge_run(result: RunResult, summary: dict, best: Optional[float], rule: KeepRule = STRICT,
              confirm: Sequence[float] = (), can_confirm: bool = False) -> tuple[str, Optional[Judgement]]:
    """(status, noise judgement) of a finished run, given ``best``, the
    incumbent's val_bpb (None before the baseline), and the session's keep
    ``rule`` (cockpit.rules.noise.KeepRule, the one rule every caller uses). Crash:
    killed, timed out, non-zero exit, or no finite val_bpb (no judgement).
    Otherwise ``rule.decide``: "keep", "discard", or with ``can_confirm``
    "confirm" for a close single run; ``confirm`` holds a confirming re-run's
    val_bpb, averaged in."""
    val = summary_val_bpb(summary)
    if result.stopped or result.timed_out or result.returncode != 0 or val is None:
        return "crash", None
    return rule.decide(val, best, confirm, can_confirm)


def decide(result: RunResult, summary: dict, best: Optional[float], rule: KeepRule = STRICT,
           confirm: Sequence[float] = ()) -> str:
    """keep / discard / crash for a finished run (``judge_run`` without the
    judgement, and a close call without a confirming re-run is a discard)."""
    return judge_run(result, summary, best, rule, confirm)[0]


def fixable(result: RunResult) -> bool:
    """True when a crashed run may get fix attempts: it was neither stopped nor
    killed at the hard limit (a run that is too slow is an idea, not a bug, and a
    fix would cost another 2 x budget)."""
    return not result.stopped and not result.timed_out


@dataclass(frozen=True)
class Trial:
    """A committed experiment: number, commit (full hash), row description, diff
    from the last keep, start time, the proposal (None for the baseline), and for
    a fix its attempt number (1..N) and the crashed commit it fixes (short)."""

    n: int
    commit: str
    description: str
    diff: str
    started: str
    asked: Optional[Asked] = None
    fix_attempt: int = 0
    fix_of: str = ""


@dataclass
class SessionState:
    """Mutable session state: best kept val_bpb (the reference the next run must
    beat), last kept commit (full hash), rows logged, dropped proposals in a row,
    summed agent usage, run log names, ``backends`` the attention backend of each
    commit trained (short hash -> backend, "" when unknown: cockpit.rules.summary
    ``attention_backend``; filled again on resume); ``kept`` the stack of this session's kept
    rows (baseline first; ``kept[-1]`` is ``last_kept``); ``last_row`` the newest
    row (ForceKeep of a just-discarded experiment). ``best``, ``last_kept`` and
    ``kept`` follow the rows through cockpit.rules.standing (``log``), the fold every
    view of the session uses: a keep (forced or not) pushes, a " [reverted]"
    discard row of the incumbent pops."""

    best: Optional[float] = None
    last_kept: str = ""
    rows: int = 0
    drops: int = 0
    usage: Optional[dict] = None
    log_names: dict = field(default_factory=dict)
    backends: dict = field(default_factory=dict)
    last_row: Optional[Row] = None
    ladder: Ladder = field(default_factory=Ladder, repr=False)

    @property
    def kept(self) -> list:
        """This session's kept rows (cockpit.row ``Row``, full hashes), baseline first, the incumbent last."""
        return self.ladder.stack

    def log(self, row: Row) -> None:
        """Count ``row`` as the newest row and fold it into the running best
        (cockpit.rules.standing): a keep becomes the reference (best, last kept commit,
        top of ``kept``); a revert row (RevertLastKeep appends a discard
        "<description> [reverted]" of the incumbent) puts the keep before it back.
        Before the first keep ``last_kept`` stays as the engine set it (the base)."""
        self.rows += 1
        self.last_row = row
        standing = self.ladder.step(row)
        if standing.incumbent is not None:
            self.best, self.last_kept = standing.best, standing.commit

    def restore(self, rows: list[Row], log_names: dict[int, str], backends: dict[str, str],
                upstream_head: Optional[str] = None) -> None:
        """Fold a resumed session's rows (experiment n = index n) in, in order, as every
        reader of results.tsv folds them (``log``); ``log_names`` by experiment and
        ``backends`` (short hash -> attention backend) as recorded. ``upstream_head``:
        upstream resets every discard, so its branch head is its best keep whatever
        hash its row holds."""
        for row in rows:
            self.log(row)
        if upstream_head is not None:
            stack = self.ladder.stack
            if stack and stack[-1].commit != upstream_head:  # its row's hash is not this head's (rewritten)
                stack[-1] = replace(stack[-1], commit=upstream_head)
            self.last_kept = upstream_head
        self.log_names.update(log_names)
        self.backends.update(backends)
