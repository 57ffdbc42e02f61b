"""Property-based tests (hypothesis) of the reply/edit parser: cockpit.rules.edits and
cockpit.rules.replies.

Sources are small train.py stand-ins: lines ``NAME = <int>`` with unique names (so
a line is unique unless a test repeats it on purpose, and a changed value is never
a trivial edit). Replies use the SEARCH/REPLACE format of edits.py's docstring and
programs/default.md, fenced or not, with or without the ``train.py`` line.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cockpit.rules.edits import Edit, EditError, apply_edits, apply_reply, parse_reply

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = st.from_regex(r"[A-Z][A-Z0-9_]{0,7}", fullmatch=True).filter(lambda name: "SEED" not in name)
VALUES = st.integers(min_value=0, max_value=10**6)
# prose without '.', ':', '`', '<', '=' or '-': it can never read as a file name, a label,
# a fence, a marker or a diff header
PROSE = st.lists(st.text(alphabet="abcdefghij klmnopqrstuvwxyz,ABC", min_size=1, max_size=40)
                 .filter(lambda text: text.strip()), min_size=1, max_size=3).map("\n".join)


@st.composite
def programs(draw, min_lines=2, max_lines=8):
    """(names, values) of a source of ``NAME = value`` lines, names unique."""
    names = draw(st.lists(NAMES, min_size=min_lines, max_size=max_lines, unique=True))
    values = draw(st.lists(VALUES, min_size=len(names), max_size=len(names)))
    return names, values


def render(names, values) -> str:
    return "".join(f"{name} = {value}\n" for name, value in zip(names, values))


@st.composite
def changes(draw, min_lines=2, max_lines=8):
    """A source, a window ``i:j`` of its lines and the source with those values changed:
    (names, values, new_values, i, j)."""
    names, values = draw(programs(min_lines, max_lines))
    i = draw(st.integers(0, len(names) - 1))
    j = draw(st.integers(i + 1, min(len(names), i + 3)))
    new_values = list(values)
    for k in range(i, j):
        new_values[k] = draw(VALUES.filter(lambda v, old=values[k]: v != old))
    return names, values, new_values, i, j


def block(search: str, replace: str, fence: bool = True, filename: bool = True) -> str:
    """One SEARCH/REPLACE block (``search``/``replace`` end with a newline)."""
    body = f"<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"
    if fence:
        body = f"```python\n{body}```\n"
    return ("train.py\n" if filename else "") + body


def reply_for(search: str, replace: str, fence: bool = True, filename: bool = True) -> str:
    return f"Description: change some values\n\n{block(search, replace, fence, filename)}"


def window(names, values, i, j) -> str:
    return render(names[i:j], values[i:j])


@SETTINGS
@given(changes(), st.booleans(), st.booleans())
def test_replacing_a_unique_window_changes_exactly_those_lines(change, fence, filename):
    """Replacing a unique run of lines yields the source with exactly those lines changed."""
    names, values, new_values, i, j = change
    source = render(names, values)
    search, replace = window(names, values, i, j), window(names, new_values, i, j)
    proposal, new_source = apply_reply(reply_for(search, replace, fence, filename), source)
    assert new_source == render(names, new_values)
    assert proposal.form == "blocks"
    assert proposal.edits == (Edit("train.py", search, replace),)


@SETTINGS
@given(changes(), PROSE, PROSE, st.booleans())
def test_prose_before_and_after_does_not_change_the_result(change, before, after, fence):
    """Prose before and after the block gives the same new source as the bare reply."""
    names, values, new_values, i, j = change
    source = render(names, values)
    bare = reply_for(window(names, values, i, j), window(names, new_values, i, j), fence)
    wrapped = f"{before}\n\n{bare}\n{after}\n"
    assert apply_reply(wrapped, source)[1] == apply_reply(bare, source)[1] == render(names, new_values)


@SETTINGS
@given(changes(), st.data())
def test_a_think_block_first_is_never_applied(change, data):
    """A <think> block drafting another edit, before the reply, gives the same new source."""
    names, values, new_values, i, j = change
    source = render(names, values)
    k = data.draw(st.integers(0, len(names) - 1))  # the draft differs from the real edit on line k
    decoy = block(window(names, values, k, k + 1), f"{names[k]} = {new_values[k] + 1}\n")
    bare = reply_for(window(names, values, i, j), window(names, new_values, i, j))
    thinking = f"<think>\nMaybe this:\n{decoy}No, the other one.\n</think>\n{bare}"
    proposal, new_source = apply_reply(thinking, source)
    assert new_source == apply_reply(bare, source)[1] == render(names, new_values)
    assert "Maybe this" in proposal.reasoning


@SETTINGS
@given(changes(), st.sampled_from(["\r\n", "\r"]), st.booleans())
def test_crlf_or_cr_line_endings_do_not_change_the_result(change, ending, fence):
    """A reply with CRLF (or CR) line endings gives the same new source as with LF."""
    names, values, new_values, i, j = change
    source = render(names, values)
    bare = reply_for(window(names, values, i, j), window(names, new_values, i, j), fence)
    assert apply_reply(bare.replace("\n", ending), source)[1] == apply_reply(bare, source)[1]


@SETTINGS
@given(programs(), st.data())
def test_search_text_not_in_the_source_raises(program, data):
    """A SEARCH text not in the source raises EditError (never a silent no-op)."""
    names, values = program
    source = render(names, values)
    k = data.draw(st.integers(0, len(names) - 1))
    absent = data.draw(st.one_of(
        NAMES.filter(lambda name: name not in names).map(lambda name: f"{name} = {values[k]}\n"),
        VALUES.filter(lambda v: v != values[k]).map(lambda v: f"{names[k]} = {v}\n"),
    ))
    replace = f"{names[k]} = {values[k] + 1}\n"
    with pytest.raises(EditError, match="not found"):
        apply_reply(reply_for(absent, replace), source)
    with pytest.raises(EditError, match="not found"):
        apply_edits(source, [Edit("train.py", absent, replace)])
    assert source == render(names, values)


@SETTINGS
@given(programs(), st.data())
def test_search_text_occurring_twice_raises_ambiguity(program, data):
    """A SEARCH text that occurs twice raises EditError saying it occurs 2 times."""
    names, values = program
    k = data.draw(st.integers(0, len(names) - 1))
    at = data.draw(st.integers(0, len(names)))
    lines = [f"{name} = {value}\n" for name, value in zip(names, values)]
    search, replace = lines[k], f"{names[k]} = {values[k] + 1}\n"
    lines.insert(at, search)
    source = "".join(lines)
    with pytest.raises(EditError, match="occurs 2 times"):
        apply_reply(reply_for(search, replace), source)
    with pytest.raises(EditError, match="occurs 2 times"):
        apply_edits(source, [Edit("train.py", search, replace)])


@SETTINGS
@given(changes())
def test_an_edit_then_its_inverse_restores_the_source(change):
    """Applying an edit and then its inverse (REPLACE -> SEARCH) gives back the original."""
    names, values, new_values, i, j = change
    source = render(names, values)
    search, replace = window(names, values, i, j), window(names, new_values, i, j)
    changed = apply_edits(source, [Edit("train.py", search, replace)])
    assert changed != source
    assert apply_edits(changed, [Edit("train.py", replace, search)]) == source


@SETTINGS
@given(changes())
def test_parse_reply_reads_the_block_texts_back(change):
    """parse_reply reads back exactly the SEARCH and REPLACE texts that were written."""
    names, values, new_values, i, j = change
    search, replace = window(names, values, i, j), window(names, new_values, i, j)
    proposal = parse_reply(reply_for(search, replace))
    assert proposal.edits == (Edit("train.py", search, replace),)
    assert proposal.description == "change some values"
