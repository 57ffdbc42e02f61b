"""The ``cockpit`` command.

    cockpit init DIR [--profile cpu|h100|tiny] [--no-prepare]
    cockpit [--workspace DIR] [--headless] [--max-experiments N] [--budget SECONDS]
            [--tag TAG] [--agent offline|litellm] [--model MODEL] [--api-base URL]
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
(cockpit.commands.report) exits 0, or 2 with one line when there is nothing to report or
its files cannot be written; matplotlib is imported only when it draws.
``cockpit status`` prints one screen on the workspace's session and exits 0 when
an engine runs there, 1 when none does; ``cockpit stop`` stops the running engine
as ``x`` then ``y`` would and waits until it is gone (exit 0; 1 when none ran).
``cockpit doctor`` checks a profile's prerequisites (cockpit.commands.doctor: Python,
Python.h, a C compiler, the NVIDIA driver against the torch build), one line
each; exit 0 when all hold, 1 otherwise. ``cockpit init --profile h100`` prints
the same lines and still succeeds.
A default tag (``dec04-2041``) never collides: when ``autoresearch/<tag>`` or a
journaled session of that tag exists, ``-2``, ``-3``, ... is added.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import re
import shlex
import signal
import sys
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence

from cockpit.agents import make_agent
from cockpit.serve.attach import AttachedEngine, DaemonError, attach_or_start, start_daemon
from cockpit.engine.context import session_program
from cockpit.events import Resume, Stop
from cockpit.serve.headless import HeadlessPrinter
from cockpit.training.no_network import NoNetworkError, network_prefix
from cockpit.store.programs import ProgramError
from cockpit.engine.session import SessionConfig
from cockpit.clock import now_iso
from cockpit.store.rundir import RunDir, RunDirError
from cockpit.store.settings import AgentSettings, add_setting_flags, flag_settings, positive
from cockpit.store.upstream import DEFAULT_RUN_COMMAND
from cockpit.store.workspace import (PROFILES, Workspace, WorkspaceError, init_workspace, load_workspace,
                               prepare_in_terminal)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# (attribute, flag) of the session flags: passed on to `cockpit serve`, ignored when attaching.
# The settings' flags come from their one declaration (cockpit.store.settings).
SESSION_FLAGS = (("max_experiments", "--max-experiments"), ("tag", "--tag"),
                 ("agent", "--agent"), ("model", "--model"), ("api_base", "--api-base"),
                 ("run_command", "--run-command"), ("new_session", "--new-session"),
                 ("resume_upstream", "--resume-upstream"), *flag_settings())
APPROVE_HEADLESS = ("--approve needs the cockpit UI to approve or veto proposals; in headless mode nothing "
                    "could, and the session would wait forever (drop --approve or --headless)")


def default_tag(now: Optional[datetime] = None) -> str:
    """Tag from the local date and time, e.g. ``nov21-2337``."""
    return (now or datetime.now()).strftime("%b%d-%H%M").lower()


def choose_session(args: argparse.Namespace, workspace: Workspace) -> tuple[str, bool]:
    """(tag, resume) for the typed flags: the interrupted or stopped session
    (cockpit.engine.resume) is continued unless ``--new-session`` is typed or a typed
    ``--tag`` names another; a new session gets the typed tag or a free default one."""
    from cockpit.store.repo import GitRepo, RepoError
    from cockpit.engine.resume import resumable_session

    def exists(name: str) -> bool:
        try:
            return GitRepo(workspace.path).branch_exists(name)
        except RepoError:
            return False

    if args.resume_upstream:
        if args.new_session or (args.tag and args.tag != args.resume_upstream):
            raise ValueError("--resume-upstream TAG continues session TAG: drop --new-session and --tag")
        return args.resume_upstream, True
    point = None if args.new_session else resumable_session(workspace.path, exists)
    if point is not None and (args.tag is None or args.tag == point.tag):
        return point.tag, True
    return args.tag or free_tag(workspace.path, default_tag()), False


def free_tag(workspace: Path, tag: str) -> str:
    """``tag``, or ``tag-2``, ``tag-3``, ... when branch ``autoresearch/<tag>`` or a session
    of that tag in the journal already exists (a default tag never collides)."""
    from cockpit.store.journal import Journal, JournalError
    from cockpit.store.repo import GitRepo, RepoError

    try:
        entries, _ = Journal(workspace).read()
    except (JournalError, OSError):
        entries = []
    taken = {e.get("tag") for e in entries if e.get("entry") == "session"}
    repo = GitRepo(workspace)

    def exists(name: str) -> bool:
        try:
            return repo.branch_exists(name)
        except RepoError:  # not a repository yet: start-up says so in its own words
            return False

    candidate, k = tag, 1
    while candidate in taken or exists(f"autoresearch/{candidate}"):
        k += 1
        candidate = f"{tag}-{k}"
    return candidate


def _tag(text: str) -> str:
    if not _TAG.match(text):
        raise argparse.ArgumentTypeError(f"tag {text!r} must be letters, digits, '.', '_' or '-'")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``init`` sub-command, the hidden ``serve``, the session flags)."""
    parser = argparse.ArgumentParser(
        prog="cockpit",
        usage=("cockpit [--workspace DIR] [--headless] [--max-experiments N] [--budget SECONDS] "
               "[--tag TAG]\n               [--agent offline|litellm] [--model MODEL] [--api-base URL] "
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
    parser.add_argument("--agent", metavar="offline|litellm", help="agent proposing edits (default: cockpit.toml's)")
    parser.add_argument("--model", help="litellm model, e.g. openai/gpt-4o-mini (default: cockpit.toml's)")
    parser.add_argument("--api-base", metavar="URL", help="base URL of an OpenAI-compatible server")
    parser.add_argument("--run-command", metavar="CMD",
                        help="training command, shell-quoted (default: python -u train.py; "
                             "upstream layout: uv run train.py)")
    add_setting_flags(parser)
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
            return _serve(args)
        if args.command == "report":
            return _report(args)
        if args.command == "status":
            return _status(args)
        if args.command == "stop":
            return _stop(args)
        if args.command == "doctor":
            from cockpit.commands.doctor import doctor
            return doctor(args.profile)
        return _session(args)
    except (WorkspaceError, ValueError, ProgramError, RunDirError, DaemonError, NoNetworkError) as exc:
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
    from cockpit.commands.doctor import run_checks
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
    from cockpit.commands.status import format_status, read_status

    status = read_status(Path(args.workspace).resolve())
    print(format_status(status))
    return 0 if status.running else 1


def _stop(args: argparse.Namespace) -> int:
    """``cockpit stop``: stop the engine and wait until it is gone; 1 when none runs."""
    from cockpit.commands.status import stop_engine

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
    (cockpit.commands.report); 2 with one line on stderr when there is nothing to report.
    A corrupt line of results.tsv or records.jsonl is a warning line, skipped."""
    from cockpit.commands.report import ReportError, write_report

    def warn(text: str) -> None:
        print(f"cockpit: warning: {text}", file=sys.stderr)

    try:
        markdown, png, report = write_report(Path(args.workspace), args.tag, args.out and Path(args.out), warn)
    except ReportError as exc:
        print(f"cockpit: report: {exc}", file=sys.stderr)
        return 2
    print(f"session {report.tag}: wrote {markdown} and {png}")
    return 0


def build_agent(settings: AgentSettings, seed: int):
    """The agent for ``settings`` through ``make_agent``, passing only the options
    that are set (the offline agent takes only ``seed``). Raises SettingsError
    (litellm without a model) or ValueError (unknown agent)."""
    settings.check()
    options = {} if settings.name == "offline" else settings.options()
    return make_agent(settings.name, seed=seed, **options)


def run_command(text: Optional[str], workspace: Workspace) -> tuple[str, ...]:
    """argv of a training run: ``--run-command`` split like a shell would, else
    ``uv run train.py`` (upstream layout) or ``python -u train.py``. Raises
    ValueError for an empty or badly quoted command."""
    if text is None:
        return DEFAULT_RUN_COMMAND if workspace.layout == "upstream" else SessionConfig.run_command
    argv = tuple(shlex.split(text))
    if not argv:
        raise ValueError("--run-command is empty")
    return argv


def approval_gate(typed: bool, workspace: Workspace, headless: bool) -> bool:
    """Whether the session starts with the approval gate on: ``--approve`` when
    typed, else cockpit.toml's ``approval_gate``. Headless, nothing can approve:
    ``--approve`` raises ValueError, the file's setting is dropped with a note."""
    if headless and typed:
        raise ValueError(APPROVE_HEADLESS)
    if headless and workspace.settings.approval_gate:
        print("cockpit: approval_gate = true in cockpit.toml is ignored in headless mode "
              "(nothing could approve a proposal)", file=sys.stderr)
        return False
    return typed or workspace.settings.approval_gate


def session_setup(args: argparse.Namespace, workspace: Workspace, headless: bool):
    """(SessionConfig, agent) of the typed flags on ``workspace``: cockpit.toml's
    settings with the typed flags applied (cockpit.store.settings). Raises ValueError,
    SettingsError (a WorkspaceError), ProgramError or NoNetworkError with one line."""
    gate = approval_gate(args.approve, workspace, headless)
    settings = replace(workspace.settings.with_flags(args), approval_gate=gate)
    command = run_command(args.run_command, workspace)
    if not settings.network:
        command = (*network_prefix(), *command)  # NoNetworkError (a RuntimeError): one line
    agent = build_agent(workspace.agent.with_flags(args.agent, args.model, args.api_base), settings.seed)
    tag, resume = choose_session(args, workspace)
    config = SessionConfig(tag=tag, resume=resume, resume_upstream=bool(args.resume_upstream),
                           max_experiments=args.max_experiments, run_command=command, settings=settings)
    return config, agent


def typed_session_flags(args: argparse.Namespace) -> list[str]:
    """The session flags typed on the command line (e.g. ``["--tag", "--budget"]``)."""
    return [flag for name, flag in SESSION_FLAGS if getattr(args, name) is not None and getattr(args, name) is not False]


def serve_argv(args: argparse.Namespace, workspace: Workspace, tag: str) -> list[str]:
    """The ``cockpit serve`` command for the typed flags: the workspace and ``--program``
    PATH absolute, the tag chosen here (so the daemon's session is the one announced)."""
    argv = [sys.executable, "-m", "cockpit.cli", "serve", "--workspace", str(workspace.path), "--tag", tag]
    for name, flag in SESSION_FLAGS:
        value = getattr(args, name)
        if name == "tag" or value is None or value is False:
            continue
        argv += [flag] if value is True else [flag, str(value)]  # --program PATH: absolute already
    return argv


def _session(args: argparse.Namespace) -> int:
    if args.headless and args.approve:  # refused before the workspace is even read
        raise ValueError(APPROVE_HEADLESS)
    workspace = load_workspace(args.workspace)
    if args.headless:
        config, agent = session_setup(args, workspace, headless=True)
        from cockpit.engine.ratchet import Engine  # the engine's modules only where it runs here

        return _headless(workspace, lambda emit: Engine(workspace, config, agent, emit), config.tag)
    return _cockpit(args, workspace)


def _headless(workspace: Workspace, engine_factory, tag: str) -> int:
    """Run the engine in this process, holding the workspace's engine lock (an engine
    daemon and a headless session never run on the same workspace)."""
    rundir = RunDir(workspace.path)
    lock = rundir.lock_engine()
    state = {"pid": os.getpid(), "mode": "headless", "tag": tag, "started": now_iso(), "status": "running"}
    rundir.write_state(state)
    printer = HeadlessPrinter()
    engine = engine_factory(printer)

    async def drive() -> str:
        loop = asyncio.get_running_loop()
        for sig in _STOP_SIGNALS:  # end cleanly: kill the training group, log its row
            loop.add_signal_handler(sig, engine.command_now, Stop())
        loop.add_signal_handler(signal.SIGUSR1, engine.command_now, Resume())  # leave a pause without a UI
        try:
            return await engine.run()
        finally:
            for sig in (*_STOP_SIGNALS, signal.SIGUSR1):
                loop.remove_signal_handler(sig)

    reason = "error: interrupted"
    try:
        reason = asyncio.run(drive())
    finally:
        rundir.mark_ended(state, reason)
        lock.release()
    return _exit_status(reason)


def _exit_status(reason: str) -> int:
    """0, or 1 with the error on stderr, for a session's end ``reason``."""
    if reason.startswith("error"):
        print(f"cockpit: {reason.removeprefix('error: ')}", file=sys.stderr)
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:
    """``cockpit serve``: the engine daemon (cockpit.serve.daemon); its stdout is logs/engine.log."""
    from cockpit.serve.daemon import serve

    workspace = load_workspace(args.workspace)
    config, agent = session_setup(args, workspace, headless=False)
    try:
        program = session_program(config.settings.program, workspace).path
    except ProgramError:
        program = None  # the engine says why when the session starts
    return _exit_status(asyncio.run(serve(workspace, config, agent, program)))


def _cockpit(args: argparse.Namespace, workspace: Workspace) -> int:
    """Attach the UI to the workspace's engine daemon, starting one if none runs."""
    rundir = RunDir(workspace.path)

    def start():
        config, _ = session_setup(args, workspace, headless=False)  # a bad flag: one line, no daemon
        session_program(config.settings.program, workspace)
        daemon = start_daemon(rundir, serve_argv(args, workspace, config.tag))
        _import_ui_meanwhile()
        return daemon

    attachment = attach_or_start(rundir, start, typed_session_flags(args))
    for note in attachment.notes:
        print(f"cockpit: {note}", file=sys.stderr)
    program = attachment.state.get("program")
    return _tui(attachment.state, title=f"cockpit · {workspace.path.name}",
                program_path=Path(program) if program else None)


def _import_ui_meanwhile() -> None:
    """Import the Textual app in a thread while the new engine daemon starts up (this thread only
    polls its state file then): the first frame waits for the later of the two, not for both one
    after the other. ``_tui``'s import then finds the module loaded, or waits for it."""
    threading.Thread(target=importlib.import_module, args=("cockpit.app.app",), name="import-ui",
                     daemon=True).start()


def _tui(state: dict, title: str, program_path: Optional[Path]) -> int:
    """Run the Textual app attached to the engine daemon of ``state``; ``program_path`` is
    the program file the editor pane edits (None for a shipped program, not edited in place)."""
    from cockpit.app.app import CockpitApp  # Textual is imported only when the UI opens

    engines: list[AttachedEngine] = []

    def factory(emit) -> AttachedEngine:
        engines.append(AttachedEngine(state, emit))
        return engines[-1]

    app = CockpitApp(factory, title=title, program_path=program_path)
    app.run()
    engine = engines[-1] if engines else None
    if engine is not None and engine.gone:
        print(f"cockpit: the engine (pid {state.get('pid')}) is gone without ending its session; "
              f"see {state.get('log')}", file=sys.stderr)
        return 1
    if engine is None or engine.ended is None:
        print(f"cockpit: detached; session {state.get('tag')} goes on in the engine (pid {state.get('pid')}). "
              "Run cockpit on the workspace again to attach.")
        return app.return_code or 0
    return _exit_status(engine.ended.reason) or (app.return_code or 0)


if __name__ == "__main__":
    sys.exit(main())
