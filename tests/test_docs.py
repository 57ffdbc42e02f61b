"""The docs stay a guide a person reads and pages that stay true: README.md under 300
lines with a working contents list, every command and flag of the CLI named in it, every
relative link resolving, and docs/architecture.md's file list matching the tree."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from cockpit.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_is_a_guide_under_300_lines_with_a_working_contents_list():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 300
    headings = {anchor(h) for h in re.findall(r"^#{2,3} (.+)$", text, re.M)}
    contents = text[text.index("## Contents"):].split("\n## ", 1)[0]
    links = re.findall(r"\]\(#([^)]+)\)", contents)
    assert len(links) >= 6
    assert [link for link in links if link not in headings] == []


def _flags_and_commands(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if name == "serve":  # hidden: started by `cockpit` itself
                    continue
                yield f"cockpit {name}"
                yield from _flags_and_commands(sub)
        else:
            yield from (o for o in action.option_strings if o.startswith("--") and o != "--help")


def test_every_command_and_flag_of_the_cli_is_named_in_the_readme():
    text = README.read_text(encoding="utf-8")
    missing = sorted({name for name in _flags_and_commands(build_parser())
                      if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)})
    assert missing == []


def test_every_relative_link_of_the_docs_resolves():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_the_architecture_file_list_matches_the_tree():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^((?:cockpit|substrate|bench|programs|scripts|tests)/\S*)", text, re.M))
    assert [path for path in sorted(listed) if not (ROOT / path).exists()] == []
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "cockpit").rglob("*.py") if p.name != "__init__.py"}
    assert sorted(modules - listed) == []  # a new module must be given its line


def test_the_readme_settings_table_is_the_generated_one():
    """README's settings table is what cockpit.store.settings generates from the one declaration."""
    from cockpit.store.settings import settings_table
    assert settings_table() in README.read_text(encoding="utf-8")


def _contract_tables():
    import importlib.util
    spec = importlib.util.spec_from_file_location("contract_tables", ROOT / "scripts" / "contract_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_contracts_reference_tables_are_the_ones_the_code_generates():
    """docs/CONTRACTS.md's events, commands, record fields, summary keys, cockpit.toml
    keys and environment variables are what scripts/contract_tables.py makes of the code."""
    tables = _contract_tables()
    text = (ROOT / "docs" / "CONTRACTS.md").read_text(encoding="utf-8")
    assert tables.rewrite(text) == text, "run: python scripts/contract_tables.py --write"
    assert "| `RowLogged` |" in text and "| `holdout_bpb` | `Optional[float]` | `None` |" in text
    # a field dropped from the doc (as a new one would be missing) is put back: the check can fail
    broken = text.replace("| `attention` | `str` | `''` |\n", "")
    assert broken != text and tables.rewrite(broken) == text


def test_every_environment_variable_the_code_reads_is_in_the_contracts():
    tables = _contract_tables()
    assert tables.variables_read() == set(tables.ENVIRONMENT)
    assert set(tables.SUMMARY_READERS) <= set(tables.printed_summary_keys())
