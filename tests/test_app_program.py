"""Pilot tests of the program editor pane: load, atomic save, edits made elsewhere, conflicts."""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text

from app_harness import Harness, until
from cockpit.app.widgets import ProgramEditor
from cockpit.app.widgets.program_editor import write_atomically

TEXT = "# program\n\nKeep the model small.\n"


def rewrite_elsewhere(path: Path, text: str) -> None:
    """What an editor in another pane does: write a temporary file, rename it over the program."""
    temporary = path.with_name(".program.md.swp")
    temporary.write_text(text)
    os.replace(temporary, path)


def program_app(tmp_path: Path) -> tuple[Harness, Path]:
    path = tmp_path / "program.md"
    path.write_text(TEXT)
    return Harness(script=(), end_when_done=False, program_path=path), path


def editor(harness: Harness) -> ProgramEditor:
    return harness.app.query_one(ProgramEditor)


def title(harness: Harness) -> str:
    return Text.from_markup(str(editor(harness).border_title)).plain


async def test_the_editor_loads_the_program_and_saves_it_atomically(tmp_path):
    harness, path = program_app(tmp_path)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        assert harness.shown() == ["program"] and editor(harness).text == TEXT
        assert title(harness) == "program · program.md · saved"
        inode = path.stat().st_ino
        await pilot.press("down", "down", "down", *"Try GELU.")
        assert editor(harness).state == "modified" and path.read_text() == TEXT
        await pilot.press("ctrl+o")
        assert path.read_text() == TEXT + "Try GELU."
        assert path.stat().st_ino != inode  # a new file renamed over the old one
        assert sorted(p.name for p in tmp_path.iterdir()) == ["program.md"]  # no temporary left
        assert editor(harness).state == "saved"
        await pilot.pause(0.3)  # our own save comes back from the watcher: no conflict
        assert editor(harness).state == "saved"


def test_atomic_write_keeps_the_mode(tmp_path):
    path = tmp_path / "program.md"
    path.write_text("old")
    path.chmod(0o600)
    write_atomically(path, "new")
    assert path.read_text() == "new" and (path.stat().st_mode & 0o777) == 0o600


async def test_an_edit_made_elsewhere_shows_up(tmp_path):
    harness, path = program_app(tmp_path)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6", "down", "down", "right", "right")
        await pilot.pause(0.1)  # the watcher is up
        rewrite_elsewhere(path, TEXT + "Then try a wider MLP.\n")
        await until(pilot, lambda: editor(harness).text == path.read_text(), timeout=2.0)
        assert editor(harness).state == "saved"
        assert editor(harness).text_area.cursor_location == (2, 2)  # the cursor stays
        path.write_text("# rewritten in place\n")  # a plain write works too
        await until(pilot, lambda: editor(harness).text == "# rewritten in place\n", timeout=2.0)
        assert editor(harness).text_area.cursor_location == (1, 0)  # clamped to the shorter text


async def test_an_edit_elsewhere_never_overwrites_local_edits(tmp_path):
    harness, path = program_app(tmp_path)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6", *"Mine. ")
        mine = "Mine. " + TEXT
        await pilot.pause(0.1)
        rewrite_elsewhere(path, "# theirs\n")
        await until(pilot, lambda: editor(harness).state == "conflict", timeout=2.0)
        assert editor(harness).text == mine and path.read_text() == "# theirs\n"
        assert harness.app.query_one("#program-notice").display
        assert title(harness) == "program · program.md · conflict"
        assert any("changed on disk" in (n.title or "") for n in harness.app._notifications)
        await pilot.press("ctrl+r")  # reload from disk: the local edits go
        assert editor(harness).text == "# theirs\n" and editor(harness).state == "saved"
        assert not harness.app.query_one("#program-notice").display


async def test_saving_in_a_conflict_overwrites_the_disk(tmp_path):
    harness, path = program_app(tmp_path)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6", *"Mine. ")
        await pilot.pause(0.1)
        rewrite_elsewhere(path, "# theirs\n")
        await until(pilot, lambda: editor(harness).state == "conflict", timeout=2.0)
        await pilot.press(*"More. ", "ctrl+o")
        assert path.read_text() == "Mine. More. " + TEXT and editor(harness).state == "saved"


async def test_a_deleted_program_is_missing_until_saved(tmp_path):
    harness, path = program_app(tmp_path)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        await pilot.pause(0.1)
        path.unlink()
        await until(pilot, lambda: editor(harness).state == "missing", timeout=2.0)
        assert editor(harness).text == TEXT  # the buffer is kept
        await pilot.press("ctrl+o")
        assert path.read_text() == TEXT and editor(harness).state == "saved"


async def test_a_program_in_a_missing_directory_is_missing_and_not_watched(tmp_path):
    harness = Harness(script=(), end_when_done=False, program_path=tmp_path / "gone" / "program.md")
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        await until(pilot, lambda: any("Not watching" in n.message for n in harness.app._notifications))
        assert editor(harness).state == "missing" and editor(harness).text == ""
        await pilot.press("ctrl+o")  # the directory is not there: the save fails and says so
        assert any("Could not save" in n.message for n in harness.app._notifications)


async def test_a_program_that_appears_later_is_loaded(tmp_path):
    path = tmp_path / "program.md"
    harness = Harness(script=(), end_when_done=False, program_path=path)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        assert editor(harness).state == "missing" and editor(harness).text == ""
        await pilot.pause(0.1)
        rewrite_elsewhere(path, TEXT)
        await until(pilot, lambda: editor(harness).text == TEXT, timeout=2.0)
        assert editor(harness).state == "saved"


async def test_a_save_tells_the_engine_which_text_a_person_confirmed(tmp_path):
    """ctrl+o sends AcceptProgram with the saved bytes' sha256: a program change held
    because it came while a run trained is released by it (cockpit.engine.program_hold)."""
    import hashlib

    from cockpit.commands import AcceptProgram

    harness, path = program_app(tmp_path)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6", "down", "down", "down", *"Try GELU.", "ctrl+o")
        await until(pilot, lambda: any(isinstance(c, AcceptProgram) for c in harness.engine.commands))
        sent = [c for c in harness.engine.commands if isinstance(c, AcceptProgram)]
        assert sent == [AcceptProgram(hashlib.sha256(path.read_bytes()).hexdigest())]
