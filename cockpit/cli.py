"""The ``cockpit`` command.

    cockpit init DIR [--profile cpu|h100|tiny] [--no-prepare]
    cockpit [--workspace DIR] [--headless] [--max-experiments N] [--budget SECONDS]
            [--tag TAG] [--agent offline|litellm] [--model MODEL] [--api-base URL]
            [--program NAME|PATH] [--run-command CMD] [--approve]

These flag names are a contract that other tools script against. A flag
overrides cockpit.toml only when it is typed. ``--approve`` (the approval gate)
needs the UI: with ``--headless`` it is refused, and cockpit.toml's
``approval_gate = true`` is ignored there with a note (nothing could approve). Exit status 0 on a normal end
(max experiments reached, stopped, agent exhausted), 1 with one line on stderr
for an error. The Textual UI is imported only when it is opened.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shlex
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence

from cockpit.agents import make_agent
from cockpit.context import session_program
from cockpit.events import Resume, SessionEnded, Stop
from cockpit.headless import HeadlessPrinter
from cockpit.programs import is_name
from cockpit.ratchet import Engine, SessionConfig
from cockpit.settings import AgentSettings
from cockpit.upstream import DEFAULT_RUN_COMMAND
from cockpit.workspace import (PROFILES, Workspace, WorkspaceError, init_workspace, load_workspace,
                               prepare_in_terminal)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
APPROVE_HEADLESS = ("--approve needs the cockpit UI to approve or veto proposals; in headless mode nothing "
                    "could, and the session would wait forever (drop --approve or --headless)")


def default_tag(now: Optional[datetime] = None) -> str:
    """Tag from the local date and time, e.g. ``nov21-2337``."""
    return (now or datetime.now()).strftime("%b%d-%H%M").lower()


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
        return value
    return parse


def _tag(text: str) -> str:
    if not _TAG.match(text):
        raise argparse.ArgumentTypeError(f"tag {text!r} must be letters, digits, '.', '_' or '-'")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``init`` sub-command plus the session flags)."""
    parser = argparse.ArgumentParser(
        prog="cockpit",
        usage=("cockpit [--workspace DIR] [--headless] [--max-experiments N] [--budget SECONDS] "
               "[--tag TAG]\n               [--agent offline|litellm] [--model MODEL] [--api-base URL] "
               "[--program NAME|PATH] [--run-command CMD] [--approve]"
               "\n       cockpit init DIR [--profile {cpu,h100,tiny}] [--no-prepare]"),
        description="Run the autoresearch ratchet on a workspace, in a terminal UI or headless.")
    parser.add_argument("--workspace", metavar="DIR", default=".", help="workspace directory (default: .)")
    parser.add_argument("--headless", action="store_true", help="print events as lines instead of the UI")
    parser.add_argument("--max-experiments", metavar="N", type=_positive(int),
                        help="stop after N results rows, baseline included (default: forever)")
    parser.add_argument("--budget", metavar="SECONDS", type=_positive(float),
                        help="training budget per run in seconds (default: the profile's)")
    parser.add_argument("--tag", type=_tag, help="session tag; branch autoresearch/TAG (default: e.g. nov21-2337)")
    parser.add_argument("--agent", metavar="offline|litellm", help="agent proposing edits (default: cockpit.toml's)")
    parser.add_argument("--model", help="litellm model, e.g. openai/gpt-4o-mini (default: cockpit.toml's)")
    parser.add_argument("--api-base", metavar="URL", help="base URL of an OpenAI-compatible server")
    parser.add_argument("--program", metavar="NAME|PATH",
                        help="program for the agent: a shipped NAME (e.g. hyperparameters) or a file "
                             "(default: the workspace's program.md)")
    parser.add_argument("--run-command", metavar="CMD",
                        help="training command, shell-quoted (default: python -u train.py; "
                             "upstream layout: uv run train.py)")
    parser.add_argument("--approve", action="store_true",
                        help="approval gate: every proposal waits for approve or veto in the cockpit "
                             "(default: approval_gate in cockpit.toml; not with --headless)")
    commands = parser.add_subparsers(dest="command", metavar="{init}")
    init = commands.add_parser("init", help="create a workspace: cockpit init DIR [--profile P] [--no-prepare]")
    init.add_argument("dir", metavar="DIR", help="new or empty directory")
    init.add_argument("--profile", choices=PROFILES, default="cpu", help="harness profile (default: cpu)")
    init.add_argument("--no-prepare", action="store_true", help="do not prepare data and tokenizer now")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``cockpit`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "init":
            return _init(args)
        return _session(args)
    except (WorkspaceError, ValueError) as exc:
        print(f"cockpit: {exc}", file=sys.stderr)
        return 1


def _init(args: argparse.Namespace) -> int:
    workspace = init_workspace(args.dir, args.profile)
    print(f"created workspace {workspace.path} (profile {workspace.profile})")
    if not args.no_prepare:
        code = prepare_in_terminal(workspace)
        if code != 0:
            print(f"cockpit: prepare.py failed (exit {code}); see {workspace.logs / 'prepare.log'}", file=sys.stderr)
            return 1
    print(f"start a session with: cockpit --workspace {args.dir}")
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


def program_flag(spec: Optional[str]) -> Optional[str]:
    """``--program`` as SessionConfig takes it: a NAME as is, a PATH made absolute
    from the current directory."""
    if spec is None or is_name(spec):
        return spec
    return str(Path(spec).expanduser().resolve())


def approval_gate(typed: bool, workspace: Workspace, headless: bool) -> bool:
    """Whether the session starts with the approval gate on: ``--approve`` when
    typed, else cockpit.toml's ``approval_gate``. Headless, nothing can approve:
    ``--approve`` raises ValueError, the file's setting is dropped with a note."""
    if headless and typed:
        raise ValueError(APPROVE_HEADLESS)
    if headless and workspace.approval_gate:
        print("cockpit: approval_gate = true in cockpit.toml is ignored in headless mode "
              "(nothing could approve a proposal)", file=sys.stderr)
        return False
    return typed or workspace.approval_gate


def _session(args: argparse.Namespace) -> int:
    if args.headless and args.approve:  # refused before the workspace is even read
        raise ValueError(APPROVE_HEADLESS)
    workspace = load_workspace(args.workspace)
    gate = approval_gate(args.approve, workspace, args.headless)
    agent = build_agent(workspace.agent.with_flags(args.agent, args.model, args.api_base), workspace.seed)
    config = SessionConfig(tag=args.tag or default_tag(), max_experiments=args.max_experiments,
                           budget_s=args.budget, run_command=run_command(args.run_command, workspace),
                           fix_attempts=workspace.fix_attempts, program=program_flag(args.program),
                           approval_gate=gate)

    def engine_factory(emit) -> Engine:
        return Engine(workspace, config, agent, emit)

    if args.headless:
        return _headless(engine_factory)
    source = session_program(config.program, workspace)
    return _tui(engine_factory, title=f"cockpit · {workspace.path.name}", program_path=source.path)


def _headless(engine_factory) -> int:
    printer = HeadlessPrinter()
    engine = engine_factory(printer)

    async def drive() -> str:
        loop = asyncio.get_running_loop()
        for sig in _STOP_SIGNALS:  # end cleanly: kill the training group, log its row
            loop.add_signal_handler(sig, engine.send, Stop())
        loop.add_signal_handler(signal.SIGUSR1, engine.send, Resume())  # leave a pause without a UI
        try:
            return await engine.run()
        finally:
            for sig in (*_STOP_SIGNALS, signal.SIGUSR1):
                loop.remove_signal_handler(sig)

    reason = asyncio.run(drive())
    if reason.startswith("error"):
        print(f"cockpit: {reason.removeprefix('error: ')}", file=sys.stderr)
        return 1
    return 0


def _tui(engine_factory, title: str, program_path: Optional[Path]) -> int:
    """Run the Textual app; ``program_path`` is the program file the editor pane
    edits (None for a shipped program, which is not edited in place)."""
    from cockpit.app.app import CockpitApp  # Textual is imported only when the UI opens

    ended: list[SessionEnded] = []

    def factory(emit):
        def tee(event):
            if isinstance(event, SessionEnded):
                ended.append(event)
            emit(event)
        return engine_factory(tee)

    app = CockpitApp(factory, title=title, program_path=program_path)
    app.run()
    reason = ended[-1].reason if ended else ""
    if reason.startswith("error"):
        print(f"cockpit: {reason.removeprefix('error: ')}", file=sys.stderr)
        return 1
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
