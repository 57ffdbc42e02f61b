"""Typed events the engine emits (the commands it accepts are cockpit.commands).

The engine never imports Textual (see DESIGN.md: "events out, commands in").
It reports what happened through one callable ``emit(event)`` it is given;
the Textual app turns each event into a message, headless mode prints it, and
tests append it to a list. Events are frozen dataclasses named in the past
tense.

All times are in seconds (float); val_bpb is bits per byte; memory in GB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Union

# Phases of one experiment, in order. "awaiting-approval" only while the approval
# gate is on (a committed proposal waits for Approve or Veto); "paused" and
# "stopped" are session states.
PHASES = ("preparing", "proposing", "committing", "awaiting-approval", "training", "measuring-noise",
          "confirming", "deciding", "paused", "stopped")

# The ``action`` names of ActionApplied and of records.jsonl's action objects.
ACTIONS = ("veto", "force-keep", "approve", "drop-queued", "gate-on", "gate-off", "revert", "steer", "pause", "resume", "stop")


# ---------------------------------------------------------------- events ----


@dataclass(frozen=True)
class SessionStarted:
    """The engine created (or checked out) its run branch and is about to loop.

    ``budget_s`` is the training time budget in seconds each run gets (the
    profile's TIME_BUDGET, or the ``--budget`` override); ``profile`` is the
    harness profile name ("cpu" or "h100"); ``approval_gate`` whether proposals
    start out waiting for Approve (SetApprovalGate changes it; see ActionApplied).
    ``started_at`` is the wall-clock start in Unix seconds when known (the engine
    daemon stamps it, so a cockpit attached later counts experiments per hour from
    the session's real start); None from an in-process engine. ``harness_sha256``
    is prepare.py's sha256 at the start: every run is checked against it.
    """

    tag: str
    branch: str
    profile: str
    budget_s: float
    workspace: str
    agent: str
    approval_gate: bool = False
    started_at: Optional[float] = None
    harness_sha256: str = ""


@dataclass(frozen=True)
class PhaseChanged:
    """Experiment ``experiment`` (0 = baseline) entered ``phase`` (one of PHASES)."""

    experiment: int
    phase: str


@dataclass(frozen=True)
class ProposalReady:
    """The agent proposed an edit; ``diff`` is the unified diff of train.py."""

    experiment: int
    description: str
    diff: str


@dataclass(frozen=True)
class ProposalRejected:
    """A proposal failed validation; ``reason`` is the message given to the agent."""

    experiment: int
    reason: str
    attempt: int


@dataclass(frozen=True)
class RunStarted:
    """Training subprocess started for ``commit`` (short hash, 7 chars)."""

    experiment: int
    commit: str
    description: str
    budget_s: float
    log_path: str


@dataclass(frozen=True)
class StepLogged:
    """One parsed progress line of the running training (see summary.parse_step_line).

    ``loss`` in nats/token; ``dt_ms`` per step in milliseconds; ``tok_per_s``
    tokens per second; ``mfu`` in percent; ``remaining_s`` seconds of budget left.
    """

    experiment: int
    step: int
    progress_pct: float
    loss: float
    lrm: float
    dt_ms: float
    tok_per_s: float
    mfu: float
    epoch: int
    remaining_s: float


@dataclass(frozen=True)
class LogLine:
    """A line of the run's output that is not a progress line (stderr included)."""

    experiment: int
    text: str


@dataclass(frozen=True)
class RunFinished:
    """The run ended. ``summary`` holds the parsed ``---`` block (empty on crash).

    ``returncode`` is the child's exit status (negative: killed by that signal);
    ``timed_out`` is True when the engine killed it at the hard limit.
    """

    experiment: int
    commit: str
    returncode: int
    timed_out: bool
    summary: dict = field(default_factory=dict)
    wall_s: float = 0.0


@dataclass(frozen=True)
class RowLogged:
    """A results.tsv row was appended (and fsynced). ``status`` is keep/discard/crash.

    ``agent_usage`` is what proposing this experiment cost (cockpit.rules.usage: tokens,
    ``cost_usd``, ``latency_s`` in seconds, retries, calls); None for the baseline
    and for agents that report no usage.
    """

    experiment: int
    commit: str
    val_bpb: float
    memory_gb: float
    status: str
    description: str
    best_val_bpb: Optional[float]
    agent_usage: Optional[dict] = None
    delta_sigma: Optional[float] = None
    """(val_bpb - the best before it) / the noise floor's sigma (cockpit.rules.noise);
    None without a noise floor or a val_bpb."""
    holdout_bpb: Optional[float] = None
    """A kept row's score on the holdout shard (cockpit.rules.holdout); None when not scored."""
    agent: Optional[str] = None
    """The proposing agent, as its record names it ("optuna-tpe", a model); None when not known."""
    worker: Optional[str] = None
    """A fleet's GPU slot that trained it ("gpu3"; cockpit.engine.fleet); None on one GPU."""


@dataclass(frozen=True)
class EngineMessage:
    """A human-readable note or error from the engine (``level``: info, warning, error)."""

    text: str
    level: str = "info"


@dataclass(frozen=True)
class ActionApplied:
    """A human command took effect (refused ones only give a warning EngineMessage).

    ``action`` is one of ACTIONS; ``experiment`` the experiment in flight or next
    (the results row number it concerns or produces); ``commit`` the short hash it
    acted on ("" when none); ``detail`` says what happened, e.g. "forced keep of #3
    (val_bpb 1.050000)". The same text comes as an EngineMessage, and the action is
    recorded in records.jsonl (``kind`` "action").
    """

    action: str
    experiment: int
    detail: str
    commit: str = ""


@dataclass(frozen=True)
class ProposalQueued:
    """The agent's next proposal is ready while experiment ``running`` trains
    (pipelined: asked against the best kept train.py); it is committed when that
    run ends. ``experiment`` is the number it will most likely get (fix attempts
    of a crash come first). ``awaiting_approval`` is True when the approval gate
    holds it: Approve or DropQueued decide it ahead, the GPU keeps training."""

    experiment: int
    running: int
    description: str
    diff: str
    awaiting_approval: bool = False


@dataclass(frozen=True)
class NoiseMeasured:
    """The noise floor (cockpit.rules.noise): val_bpb of the baseline and its re-runs,
    their sample standard deviation ``sigma`` and the improvement a single run
    must now exceed to be kept (``threshold``), in bits per byte."""

    runs: list
    sigma: float
    threshold: float


@dataclass(frozen=True)
class TimeAccounted:
    """Where the seconds went, after each results row (cockpit.rules.timekeeping).

    ``timings`` is the experiment's own account, in seconds: ``propose_s`` (the
    model's time, overlapped with the previous run when pipelined),
    ``wait_model_s`` / ``wait_human_s`` / ``paused_s`` / ``overhead_s`` (the
    cockpit's own: git, parsing, writing) of the idle gap before its run
    (``gap_s``), ``git_s`` (part of the overhead), ``startup_s``, ``training_s``,
    ``eval_s``, ``wall_s``. ``session`` sums them since the baseline started:
    ``wall_s``, ``training_s``, ``idle_share`` (1 - training / wall),
    ``experiments_per_hour`` and ``ideal_per_hour`` (3600 / budget), and the
    summed idle categories (``wait_model_s`` ... ``eval_s``)."""

    experiment: int
    timings: dict
    session: dict


@dataclass(frozen=True)
class AgentChanged:
    """The agent that writes the next proposal: ``name`` (its ``--agent`` name:
    offline, optuna, litellm), ``agent`` (as the records name it: "optuna-tpe", a
    model name) and ``choices`` (the names a SwitchAgent may give, in the order the
    cockpit's ``n`` key cycles). Emitted as the session starts and after each
    switch (cockpit.engine.agent_desk)."""

    name: str
    agent: str
    choices: list


WORKER_PHASES = ("baseline", "asking", "training", "deciding", "paused", "lost", "done")  # a fleet slot's


@dataclass(frozen=True)
class WorkerUpdated:
    """A GPU slot of a fleet session (``--gpus N`` > 1, cockpit.engine.fleet) changed: ``worker``
    ("gpu3"), ``node`` (Ray node id, hex), ``host``, ``gpu`` (CUDA_VISIBLE_DEVICES), ``phase`` (of
    WORKER_PHASES), ``experiment`` it trains (-1: none) and its ``description``, ``val_bpb`` the
    slot's last (bits per byte; None before one), ``budget_s`` (seconds). Time left: StepLogged."""

    worker: str
    node: str
    host: str
    gpu: str
    phase: str
    experiment: int = -1
    description: str = ""
    val_bpb: Optional[float] = None
    budget_s: float = 0.0


@dataclass(frozen=True)
class SessionEnded:
    """The loop ended: ``reason`` is "max-experiments", "stopped", "agent-exhausted"
    (the agent had nothing left to propose) or "error: ..."; ``experiments`` counts
    the results rows of this session, baseline included; ``agent_usage`` the
    session's summed agent usage (None when the agent reports none)."""

    reason: str
    experiments: int
    agent_usage: Optional[dict] = None


Event = Union[
    SessionStarted,
    AgentChanged,
    PhaseChanged,
    ProposalReady,
    ProposalRejected,
    RunStarted,
    StepLogged,
    LogLine,
    RunFinished,
    RowLogged,
    EngineMessage,
    ActionApplied,
    ProposalQueued,
    NoiseMeasured,
    TimeAccounted,
    WorkerUpdated,
    SessionEnded,
]

Emit = Callable[[Event], None]
