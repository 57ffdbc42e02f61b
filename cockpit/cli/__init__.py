"""The ``cockpit`` command.

    cockpit init DIR [--profile cpu|h100|tiny] [--no-prepare]
    cockpit [--workspace DIR] [--headless] [--max-experiments N] [--budget SECONDS]
            [--tag TAG] [--agent offline|litellm|optuna|optuna+litellm] [--sampler tpe|cmaes|random] [--model MODEL] [--api-base URL]
            [--program NAME|PATH] [--run-command CMD] [--approve]
    cockpit report [--workspace DIR] [--tag TAG] [--out PATH]
    cockpit status [--workspace DIR]
    cockpit stop [--workspace DIR]
    cockpit doctor [--profile cpu|h100|tiny]
    cockpit serve --workspace DIR [session flags]     (hidden: started by ``cockpit``)

These flag names are a contract that other tools script against. A flag
overrides cockpit.toml only when it is typed. Without ``--headless`` the engine
runs in a daemon (``cockpit serve``, cockpit.serve.daemon) that outlives the UI:
``cockpit`` attaches to the one running on the workspace (typed session flags
are then ignored, with a note) or starts one (cockpit.serve.attach). ``--headless``
runs the engine in this process. ``--approve`` (the approval gate)
needs the UI: with ``--headless`` it is refused, and cockpit.toml's
``approval_gate = true`` is ignored there with a note (nothing could approve). Exit status 0 on a normal end
(max experiments reached, stopped, agent exhausted) and on a detach, 1 with one line on stderr
for an error. The Textual UI is imported only when it is opened. ``cockpit report``
(cockpit.tools.report) exits 0, or 2 with one line when there is nothing to report or
its files cannot be written; matplotlib is imported only when it draws.
``cockpit status`` prints one screen on the workspace's session and exits 0 when
an engine runs there, 1 when none does; ``cockpit stop`` stops the running engine
as ``x`` then ``y`` would and waits until it is gone (exit 0; 1 when none ran).
``cockpit doctor`` checks a profile's prerequisites (cockpit.tools.doctor: Python,
Python.h, a C compiler, the NVIDIA driver against the torch build), one line
each; exit 0 when all hold, 1 otherwise. ``cockpit init --profile h100`` prints
the same lines and still succeeds.
A default tag (``dec04-2041``) never collides: when ``autoresearch/<tag>`` or a
journaled session of that tag exists, ``-2``, ``-3``, ... is added.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

from cockpit.training.run_result import RunnerError
from cockpit.cli.session import run_session, serve
from cockpit.serve.attach import DaemonError
from cockpit.store.programs import ProgramError
from cockpit.store.rundir import RunDirError
from cockpit.store.settings import add_setting_flags, positive
from cockpit.store.workspace import PROFILES, WorkspaceError, init_workspace, prepare_in_terminal
from cockpit.training.no_network import NoNetworkError


_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _tag(text: str) -> str:
    if not _TAG.match(text):
        raise argparse.ArgumentTypeError(f"tag {text!r} must be letters, digits, '.', '_' or '-'")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``init`` sub-command, the hidden ``serve``, the session flags)."""
    parser = argparse.ArgumentParser(
        prog="cockpit",
        usage=("cockpit [--workspace DIR] [--headless] [--max-experiments N] [--budget SECONDS] "
               "[--tag TAG]\n               [--agent offline|litellm|optuna|optuna+litellm] [--sampler S] [--model MODEL] [--api-base URL] "
               "[--program NAME|PATH] [--run-command CMD] [--approve]"
               "\n       cockpit init DIR [--profile {cpu,h100,tiny}] [--no-prepare]"
               "\n       cockpit report [--workspace DIR] [--tag TAG] [--out PATH]"
               "\n       cockpit status [--workspace DIR]\n       cockpit stop [--workspace DIR]"
               "\n       cockpit doctor [--profile {cpu,h100,tiny}]"),
        description="Run the autoresearch ratchet on a workspace, in a terminal UI or headless. "
                    "The UI's engine runs in the background: q detaches, `cockpit` again attaches.")
    parser.add_argument("--workspace", metavar="DIR", default=".", help="workspace directory (default: .)")
    parser.add_argument("--headless", action="store_true",
                        help="run the engine in this process and print events as lines instead of the UI")
    _session_flags(parser)
    commands = parser.add_subparsers(dest="command", metavar="{init,report,status,stop,doctor}")
    init = commands.add_parser("init", help="create a workspace: cockpit init DIR [--profile P] [--no-prepare]")
    init.add_argument("dir", metavar="DIR", help="new or empty directory")
    init.add_argument("--profile", choices=PROFILES, default="cpu", help="harness profile (default: cpu)")
    init.add_argument("--no-prepare", action="store_true", help="do not prepare data and tokenizer now")
    report = commands.add_parser(
        "report", help="write a session's report: cockpit report [--workspace DIR] [--tag TAG] [--out PATH]",
        usage="cockpit report [--workspace DIR] [--tag TAG] [--out PATH]",
        description="Write a session's markdown report (settings, baseline and best val_bpb, the top wins, "
                    "counts, agent tokens and cost, GPU hours, noise floor and holdout) and a PNG of its "
                    "val_bpb staircase next to it, from results.tsv and records.jsonl (or results.tsv alone, as an "
                    "upstream session leaves it). Exit 2 with one line "
                    "when there is nothing to report.")
    # SUPPRESS: `cockpit --workspace DIR report` keeps the DIR typed before the sub-command
    report.add_argument("--workspace", metavar="DIR", default=argparse.SUPPRESS,
                        help="workspace directory (default: .)")
    report.add_argument("--tag", type=_tag, default=argparse.SUPPRESS,
                        help="the session to report (default: the newest session's tag in records.jsonl; "
                             "from results.tsv alone, without records.jsonl: the last session, session-N)")
    report.add_argument("--out", metavar="PATH",
                        help="the markdown file, or a directory for it (default: DIR/report-TAG.md); the PNG "
                             "goes next to it as <name>-staircase.png (default: DIR/report-TAG-staircase.png)")
    for name, text in (("status", "print the workspace's session on one screen; exit 0 when an engine runs, 1 "
                                  "when none does"),
                       ("stop", "stop the engine running on the workspace (as x then y in the cockpit) and wait "
                                "until it is gone; exit 1 when none runs")):
        sub = commands.add_parser(name, help=text, description=text, usage=f"cockpit {name} [--workspace DIR]")
        sub.add_argument("--workspace", metavar="DIR", default=argparse.SUPPRESS,
                         help="workspace directory (default: .)")
    text = ("check a profile's prerequisites (Python 3.11+, Python.h and a C compiler for Triton, the NVIDIA "
            "driver against the torch build), one line each; exit 0 when all hold, 1 otherwise")
    doctor = commands.add_parser("doctor", help=text, description=text, usage="cockpit doctor [--profile P]")
    doctor.add_argument("--profile", choices=PROFILES, default="h100", help="harness profile (default: h100)")
    serve = commands.add_parser("serve", description="the engine daemon `cockpit` starts (not for direct use)")
    serve.add_argument("--workspace", metavar="DIR", default=".", help="workspace directory (default: .)")
    _session_flags(serve)
    serve.set_defaults(headless=False)
    return parser


def _session_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-experiments", metavar="N", type=positive(int),
                        help="stop after N results rows, baseline included (default: forever)")
    parser.add_argument("--tag", type=_tag, help="session tag; branch autoresearch/TAG (default: e.g. nov21-2337)")
    parser.add_argument("--agent", metavar="offline|litellm|optuna|optuna+litellm", help="agent proposing edits (default: cockpit.toml's)")
    parser.add_argument("--sampler", choices=("tpe", "cmaes", "random"),
                        help="the optuna agent's sampler (default: cockpit.toml's, else tpe)")
    parser.add_argument("--model", help="litellm model, e.g. openai/gpt-4o-mini (default: cockpit.toml's)")
    parser.add_argument("--api-base", metavar="URL", help="base URL of an OpenAI-compatible server")
    parser.add_argument("--run-command", metavar="CMD",
                        help="training command, shell-quoted (default: python -u train.py; "
                             "upstream layout: uv run train.py)")
    add_setting_flags(parser)
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="with --gpus N > 1: join the Ray cluster at ADDR (default: RAY_ADDRESS, else a local "
                             "Ray on this node)")
    parser.add_argument("--new-session", action="store_true",
                        help="start a new session from the current best even when the last one was interrupted "
                             "(default: the same command continues an interrupted or stopped session)")
    parser.add_argument("--resume-upstream", metavar="TAG", type=_tag,
                        help="continue the session upstream autoresearch ran in this checkout: results.tsv and "
                             "branch autoresearch/TAG (its rows shown, new rows appended to the same file)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``cockpit`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "init":
            return _init(args)
        if args.command == "serve":
            return serve(args)
        if args.command == "report":
            return _report(args)
        if args.command == "status":
            return _status(args)
        if args.command == "stop":
            return _stop(args)
        if args.command == "doctor":
            from cockpit.tools.doctor import doctor
            return doctor(args.profile)
        return run_session(args)
    except (WorkspaceError, ValueError, ProgramError, RunDirError, DaemonError, NoNetworkError, RunnerError) as exc:
        print(f"cockpit: {exc}", file=sys.stderr)
        return 1


def _init(args: argparse.Namespace) -> int:
    workspace = init_workspace(args.dir, args.profile)
    print(f"created workspace {workspace.path} (profile {workspace.profile})")
    _init_checks(workspace.profile)
    if not args.no_prepare:
        code = prepare_in_terminal(workspace)
        if code != 0:
            print(f"cockpit: prepare.py failed (exit {code}); see {workspace.logs / 'prepare.log'}", file=sys.stderr)
            return 1
    print(f"start a session with: cockpit --workspace {args.dir}")
    return 0


def _init_checks(profile: str) -> None:
    """For a profile that needs CUDA: cockpit doctor's lines, as warnings (init goes on:
    data and tokenizer can be prepared on a machine without a GPU)."""
    from cockpit.tools.doctor import run_checks
    from substrate.prepare import PROFILES as HARNESS

    if not HARNESS[profile]["NEEDS_CUDA"]:
        return
    checks = run_checks(profile)
    print(f"prerequisites of the {profile} profile (cockpit doctor --profile {profile}):")
    for check in checks:
        print(f"  {check.line()}")
    if not next(c for c in checks if c.name == "CUDA").ok:
        print(f"warning: no usable CUDA here: train.py will stop at once (profile {profile} needs CUDA); "
              "preparing data and tokenizer still works", file=sys.stderr)


def _status(args: argparse.Namespace) -> int:
    """``cockpit status``: one screen; 0 when an engine runs on the workspace, else 1."""
    from cockpit.tools.status import format_status, read_status

    status = read_status(Path(args.workspace).resolve())
    print(format_status(status))
    return 0 if status.running else 1


def _stop(args: argparse.Namespace) -> int:
    """``cockpit stop``: stop the engine and wait until it is gone; 1 when none runs."""
    from cockpit.tools.status import stop_engine

    workspace = Path(args.workspace).resolve()
    try:
        stopped = stop_engine(workspace)
    except TimeoutError as exc:
        print(f"cockpit: {exc}", file=sys.stderr)
        return 1
    if not stopped:
        print(f"cockpit: no engine runs on {workspace}", file=sys.stderr)
        return 1
    print("stopped: the engine is gone")
    return 0


def _report(args: argparse.Namespace) -> int:
    """``cockpit report``: write the session's markdown report and staircase PNG
    (cockpit.tools.report); 2 with one line on stderr when there is nothing to report.
    A corrupt line of results.tsv or records.jsonl is a warning line, skipped."""
    from cockpit.tools.report import ReportError, write_report

    def warn(text: str) -> None:
        print(f"cockpit: warning: {text}", file=sys.stderr)

    try:
        markdown, png, report = write_report(Path(args.workspace), args.tag, args.out and Path(args.out), warn)
    except ReportError as exc:
        print(f"cockpit: report: {exc}", file=sys.stderr)
        return 2
    print(f"session {report.tag}: wrote {markdown} and {png}")
    return 0
