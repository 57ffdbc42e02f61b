"""The reference tables of docs/CONTRACTS.md, generated from the code that holds the truth.

    python scripts/contract_tables.py           # print every table
    python scripts/contract_tables.py --write   # rewrite the tables in docs/CONTRACTS.md
    python scripts/contract_tables.py --check   # exit 1 when docs/CONTRACTS.md differs

Each table sits in docs/CONTRACTS.md between ``<!-- table: NAME -->`` and
``<!-- end: NAME -->``; tests/test_docs.py checks that what is there is what this
script generates, so a new event field, record field, summary key, setting or
environment variable cannot be left out of the reference.

Tables: ``events`` and ``commands`` (cockpit/events.py, cockpit/commands.py: each frozen dataclass, its
fields with types and defaults, the first sentence of its docstring), ``records``
(cockpit/store/records.py ``ExperimentRecord``), ``summary`` (the keys of the
``---`` block substrate/train.py prints, and which the engine reads),
``settings`` and ``agent`` (cockpit.toml: cockpit/store/settings.py,
cockpit/store/agent_settings.py) and ``environment`` (every
``COCKPIT_*`` variable the code reads, with its reader and meaning, listed here
and checked against a scan of the code).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import re
import sys
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cockpit import commands, events  # noqa: E402
from cockpit.store import settings as settings_module  # noqa: E402
from cockpit.store.agent_settings import AgentSettings  # noqa: E402
from cockpit.store.records import ExperimentRecord  # noqa: E402

CONTRACTS = ROOT / "docs" / "CONTRACTS.md"

# Every COCKPIT_* environment variable the code reads: who reads it, what it means.
ENVIRONMENT = {
    "COCKPIT_BEST_VAL_BPB": ("substrate/prepare.py (evaluate_bpb), set by cockpit/rules/holdout.py",
                             "score the holdout shard only when val_bpb is below this"),
    "COCKPIT_BUDGET_CLOCK": ("substrate/prepare.py", "the clock TIME_BUDGET is counted on (wall or cpu), over "
                             "the profile's BUDGET_CLOCK"),
    "COCKPIT_CACHE_DIR": ("substrate/prepare.py", "where shards, tokenizer and kernels are cached "
                          "(default ~/.cache/cockpit)"),
    "COCKPIT_DATA_URL": ("substrate/prepare.py", "base URL of the climbmix shards (a mirror)"),
    "COCKPIT_FAULT": ("cockpit/engine/faults.py", "tests only: die as kill -9 would at a named point"),
    "COCKPIT_HOLDOUT_OUT": ("substrate/prepare.py (evaluate_bpb), set by cockpit/rules/holdout.py",
                            "the JSON file the holdout score is written to"),
    "COCKPIT_PASS_ENV": ("cockpit/rules/run_env.py", "more variable names (shell patterns) a run may see"),
    "COCKPIT_PROFILE": ("substrate/prepare.py", "the harness profile (cpu, h100), over cockpit.toml's"),
    "COCKPIT_RAY_NUM_GPUS": ("cockpit/training/ray_slots.py", "logical GPUs of a local Ray (a CPU machine: "
                             "tests, benches)"),
    "COCKPIT_REQUIRE_RAY": ("tests/ray/conftest.py, set by .ci/run", "Ray tests outside a network namespace of "
                            "their own fail instead of skipping"),
    "COCKPIT_REQUIRE_TMUX": ("tests/test_tmux.py, set by .ci/run", "a missing tmux fails the test instead of "
                             "skipping it"),
    "COCKPIT_RUN_ID": ("cockpit/training/sweep.py, set by cockpit/training/runner.py",
                       "set per run; its leftover processes are found by it"),
    "COCKPIT_RUN_ROOT": ("cockpit/training/ray_slots.py", "each node's root of run directories "
                         "(default ~/.cache/cockpit/runs)"),
    "COCKPIT_TIME_BUDGET": ("substrate/prepare.py, set by cockpit/engine/startup.py",
                            "the time budget in seconds, when --budget or cockpit.toml overrides TIME_BUDGET"),
}

# The summary keys the engine reads, and where (cockpit/rules/summary.py and its callers).
SUMMARY_READERS = {
    "val_bpb": "summary_val_bpb: the row's val_bpb, the keep rule",
    "peak_vram_mb": "summary_memory_gb: the row's memory_gb (MB / 1024)",
    "attention": "attention_backend: the record's attention field",
    "training_seconds": "the status bar and the report",
    "mfu_percent": "the status bar and the report",
}


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _first_sentence(doc: str) -> str:
    text = " ".join((doc or "").split())
    match = re.match(r"(.+?\.)(?=\s+[A-Z(`]|$)", text)
    return match.group(1) if match else text


def _type_name(hint) -> str:
    text = typing_repr(hint)
    return text.replace("typing.", "").replace("NoneType", "None")


def typing_repr(hint) -> str:
    """A type hint as the code spells it (``Optional[float]``, ``dict``, ``str``)."""
    if isinstance(hint, type):
        return hint.__name__
    return str(hint)


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return repr(f.default_factory())  # type: ignore[misc]
    return ""


def _fields(cls) -> str:
    hints = typing.get_type_hints(cls)
    parts = []
    for f in dataclasses.fields(cls):
        default = _default(f)
        parts.append(f"`{f.name}: {_type_name(hints[f.name])}{' = ' + default if default else ''}`")
    return ", ".join(parts) or "(none)"


def _classes(kind: str) -> list[type]:
    members = typing.get_args(events.Event) if kind == "events" else typing.get_args(commands.Command)
    return list(members)


def dataclass_table(kind: str) -> str:
    """The events (cockpit/events.py) or the commands (cockpit/commands.py) as a markdown table."""
    lines = [f"| {kind[:-1]} | fields | meaning |", "|---|---|---|"]
    for cls in _classes(kind):
        lines.append(f"| `{cls.__name__}` | {_cell(_fields(cls))} | {_cell(_first_sentence(cls.__doc__))} |")
    return "\n".join(lines)


def records_table() -> str:
    """ExperimentRecord's fields: name, type, default (records.jsonl objects)."""
    hints = typing.get_type_hints(ExperimentRecord)
    lines = ["| field | type | default |", "|---|---|---|"]
    for f in dataclasses.fields(ExperimentRecord):
        default = _default(f)
        lines.append(f"| `{f.name}` | `{_type_name(hints[f.name])}` | {f'`{default}`' if default else 'required'} |")
    return "\n".join(lines)


def printed_summary_keys() -> list[str]:
    """The keys of the summary dict substrate/train.py prints after ``---``, in order."""
    tree = ast.parse((ROOT / "substrate" / "train.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "summary" for t in node.targets)
                and isinstance(node.value, ast.Dict)):
            return [key.value for key in node.value.keys if isinstance(key, ast.Constant)]
    raise LookupError("substrate/train.py assigns no summary dict")


def summary_table() -> str:
    """The summary keys: printed by substrate/train.py, read by the engine."""
    lines = ["| key | read by the engine |", "|---|---|"]
    for key in printed_summary_keys():
        lines.append(f"| `{key}` | {_cell(SUMMARY_READERS.get(key, 'kept in the record (summary)'))} |")
    return "\n".join(lines)


def attribute_docs(cls) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` (the string literal that
    follows its annotation in the class body), by field name."""
    import inspect
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for statement, after in zip(body, body[1:]):
        if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)):
            docs[statement.target.id] = str(after.value.value)
    return docs


def agent_table() -> str:
    """cockpit.toml's ``[agent]`` keys (AgentSettings): type, default, meaning."""
    hints, docs = typing.get_type_hints(AgentSettings), attribute_docs(AgentSettings)
    lines = ["| `[agent]` key | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(AgentSettings):
        lines.append(f"| `{f.name}` | `{_type_name(hints[f.name])}` | `{_default(f)}` | "
                     f"{_cell(docs.get(f.name, ''))} |")
    return "\n".join(lines)


def environment_table() -> str:
    """The COCKPIT_* environment variables: who reads each, what it means."""
    lines = ["| variable | read by | meaning |", "|---|---|---|"]
    for name, (reader, meaning) in sorted(ENVIRONMENT.items()):
        lines.append(f"| `{name}` | {_cell(reader)} | {_cell(meaning)} |")
    return "\n".join(lines)


def variables_read(roots: tuple[str, ...] = ("cockpit", "substrate")) -> set[str]:
    """Every string constant ``COCKPIT_*`` in the Python files under ``roots``, plus the
    ones .ci/run sets: the environment variables the code reads."""
    names = set()
    for root in roots:
        for path in (ROOT / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                        and re.fullmatch(r"COCKPIT_[A-Z0-9_]+", node.value):
                    names.add(node.value)
    names.update(re.findall(r"\b(COCKPIT_[A-Z0-9_]+)=", (ROOT / ".ci" / "run").read_text(encoding="utf-8")))
    return names


TABLES = {
    "events": lambda: dataclass_table("events"),
    "commands": lambda: dataclass_table("commands"),
    "records": records_table,
    "summary": summary_table,
    "settings": settings_module.settings_table,
    "agent": agent_table,
    "environment": environment_table,
}


def block(name: str) -> str:
    """One table with its markers, as docs/CONTRACTS.md holds it."""
    return f"<!-- table: {name} -->\n{TABLES[name]().rstrip()}\n<!-- end: {name} -->"


def rewrite(text: str) -> str:
    """``text`` (docs/CONTRACTS.md) with every marked table replaced by the generated one.
    Raises LookupError for a table whose markers are missing."""
    for name in TABLES:
        pattern = re.compile(rf"<!-- table: {name} -->\n.*?<!-- end: {name} -->", re.S)
        if not pattern.search(text):
            raise LookupError(f"docs/CONTRACTS.md has no <!-- table: {name} --> ... <!-- end: {name} -->")
        text = pattern.sub(lambda _: block(name), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/CONTRACTS.md's reference tables.")
    parser.add_argument("--write", action="store_true", help="rewrite the tables in docs/CONTRACTS.md")
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/CONTRACTS.md differs")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        print("\n\n".join(block(name) for name in TABLES))
        return 0
    text = CONTRACTS.read_text(encoding="utf-8")
    new = rewrite(text)
    if args.check:
        if new != text:
            print("docs/CONTRACTS.md's tables differ from the code: run python scripts/contract_tables.py --write",
                  file=sys.stderr)
            return 1
        return 0
    CONTRACTS.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
