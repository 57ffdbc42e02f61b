"""The session commands of the ``cockpit`` CLI: the tag, the settings and agent from
cockpit.toml and the typed flags, the engine in a daemon (``cockpit serve``, attached
to by the Textual cockpit) or headless in this process, and the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import shlex
import signal
import sys
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Optional

from cockpit.cli.agents import build_desk
from cockpit.clock import now_iso
from cockpit.engine.context import session_program
from cockpit.engine.session import SessionConfig
from cockpit.commands import Resume, Stop
from cockpit.serve.attach import AttachedEngine, attach_or_start, start_daemon
from cockpit.serve.headless import HeadlessPrinter
from cockpit.store.programs import ProgramError
from cockpit.store.rundir import RunDir
from cockpit.cli.fleet import fleet_factory, session_gpus
from cockpit.store.settings import flag_settings
from cockpit.store.upstream import DEFAULT_RUN_COMMAND
from cockpit.store.workspace import Workspace, load_workspace
from cockpit.training.no_network import network_prefix


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# (attribute, flag) of the session flags: passed on to `cockpit serve`, ignored when attaching.
# The settings' flags come from their one declaration (cockpit.store.settings).
SESSION_FLAGS = (("max_experiments", "--max-experiments"), ("tag", "--tag"),
                 ("agent", "--agent"), ("model", "--model"), ("api_base", "--api-base"), ("sampler", "--sampler"),
                 ("run_command", "--run-command"), ("new_session", "--new-session"),
                 ("resume_upstream", "--resume-upstream"), ("ray_address", "--ray-address"), *flag_settings())
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
    """(SessionConfig, AgentDesk: the agents) of the typed flags on ``workspace``: cockpit.toml's
    settings with the typed flags applied (cockpit.store.settings). Raises ValueError,
    SettingsError (a WorkspaceError), ProgramError or NoNetworkError with one line."""
    gate = approval_gate(args.approve, workspace, headless)
    settings = replace(workspace.settings.with_flags(args), approval_gate=gate)
    command = run_command(args.run_command, workspace)
    if not settings.network:
        command = (*network_prefix(), *command)  # NoNetworkError (a RuntimeError): one line
    tag, resume = choose_session(args, workspace)
    desk = build_desk(workspace.agent.with_flags(args.agent, args.model, args.api_base, args.sampler),
                      settings.seed, workspace, tag)
    describe = getattr(desk.current, "describe", None)
    if callable(describe):  # the optuna agent's search space, printed as the session starts
        print(describe(workspace.train_py.read_text(encoding="utf-8")), file=sys.stderr)
    config = SessionConfig(tag=tag, resume=resume, resume_upstream=bool(args.resume_upstream),
                           max_experiments=args.max_experiments, run_command=command, settings=settings,
                           reuse_noise=getattr(args, "noise_runs", None) is None)  # typed: measure again
    return config, desk


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


def run_session(args: argparse.Namespace) -> int:
    """``cockpit [--workspace DIR] [session flags]``: the session, headless or in the cockpit; exit status."""
    if args.headless and args.approve:  # refused before the workspace is even read
        raise ValueError(APPROVE_HEADLESS)
    workspace = load_workspace(args.workspace)
    if args.headless:
        config, agent = session_setup(args, workspace, headless=True)
        gpus = session_gpus(args, workspace)
        if not gpus.local:
            return _headless(workspace, fleet_factory(workspace, config, agent, gpus, args.ray_address), config.tag)
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


def serve(args: argparse.Namespace) -> int:
    """``cockpit serve``: the engine daemon (cockpit.serve.daemon; a FleetEngine for --gpus N > 1); exit status."""
    from cockpit.serve.daemon import serve

    workspace = load_workspace(args.workspace)
    config, agent = session_setup(args, workspace, headless=False)
    try:
        program = session_program(config.settings.program, workspace).path
    except ProgramError:
        program = None  # the engine says why when the session starts
    fleet = None if (gpus := session_gpus(args, workspace)).local else fleet_factory(workspace, config, agent, gpus,
                                                                                    args.ray_address)
    return _exit_status(asyncio.run(serve(workspace, config, agent, program, fleet)))


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
