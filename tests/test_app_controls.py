"""Pilot tests of the human controls: keys, dialogs, approval, and what the status bar says."""

from __future__ import annotations

import pytest

from app_harness import Harness, ended, until
from cockpit.app.dialogs import ConfirmScreen, SteerScreen
from cockpit.commands import Approve, ForceKeep, Pause, Resume, RevertLastKeep, SetApprovalGate, Steer, Veto
from scripted_engine import DEFAULT_SCRIPT, Experiment

# key presses (F-keys, then the same with letters) and the commands they send, in order
F_KEYS = (["f6", "f8", "f9", "f9", "f12", "f12", "f7", "y", "f11", "y", "f10", *"go on", "enter"])
LETTERS = (["v", "a", "g", "g", "p", "p", "k", "y", "r", "y", "s", *"go on", "enter"])
SENT = [Veto(), Approve(), SetApprovalGate(True), SetApprovalGate(False), Pause(), Resume(), ForceKeep(),
        RevertLastKeep(), Steer("go on")]


def idle(tmp_path=None) -> Harness:
    """An engine with nothing to run that waits for Stop: every command is only recorded."""
    program = None
    if tmp_path is not None:
        program = tmp_path / "program.md"
        program.write_text("# program\n")
    return Harness(script=(), end_when_done=False, program_path=program)


async def started(pilot, harness: Harness) -> None:
    await until(pilot, lambda: harness.engine is not None and bool(harness.engine.events))


@pytest.mark.parametrize("keys", [F_KEYS, LETTERS], ids=["f-keys", "letters"])
async def test_every_control_key_sends_its_command(keys):
    harness = idle()
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await started(pilot, harness)
        for key in keys:
            await pilot.press(key)
        await pilot.pause()
        assert harness.engine.commands == SENT
        assert harness.app.screen is harness.app.screen_stack[0]  # every dialog closed
        assert any("Veto sent" in n.message for n in harness.app._notifications)


async def test_f_keys_work_while_the_editor_has_the_focus(tmp_path):
    harness = idle(tmp_path)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await started(pilot, harness)
        await pilot.press("6")
        assert harness.app.focused.id == "program-text"
        for key in F_KEYS:
            await pilot.press(key)
        await pilot.pause()
        assert harness.engine.commands == SENT
        assert harness.app.query_one("#program-text").text == "# program\n"  # the editor took no key


async def test_letters_typed_in_the_editor_are_text(tmp_path):
    harness = idle(tmp_path)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await started(pilot, harness)
        await pilot.press("6", "down", *"vkagsrpqx1234566")
        assert harness.app.query_one("#program-text").text == "# program\nvkagsrpqx1234566"
        assert harness.engine.commands == [] and harness.app.is_running
        assert harness.shown() == ["program"]
        footer_keys = {binding.key for _, binding, _, _ in harness.app.screen.active_bindings.values()}
        assert "v" not in footer_keys and "f6" in footer_keys and "ctrl+o" in footer_keys


@pytest.mark.parametrize("key", ["f7", "k", "f11", "r"])
async def test_force_keep_and_revert_ask_first(key):
    harness = idle()
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await started(pilot, harness)
        await pilot.press(key)
        assert isinstance(harness.app.screen, ConfirmScreen)
        await pilot.press("v", "f6", "f12", "2")  # a dialog takes only its own keys
        await pilot.press("n")
        assert not isinstance(harness.app.screen, ConfirmScreen)
        await pilot.press(key, "escape")
        assert harness.engine.commands == []
        await pilot.press(key, "y")
        assert harness.engine.commands == [ForceKeep() if key in ("f7", "k") else RevertLastKeep()]


async def test_steer_sends_the_note_and_lists_it():
    harness = idle()
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await started(pilot, harness)
        await pilot.press("s", *"v a", "escape")  # escape cancels
        assert harness.engine.commands == []
        await pilot.press("s")
        assert isinstance(harness.app.screen, SteerScreen)
        await pilot.press("enter")  # an empty note sends nothing
        await pilot.press("f10", *"warmdown", "enter")
        assert harness.engine.commands == [Steer("warmdown")]
        await pilot.press("5")
        await until(pilot, lambda: bool(harness.agent_lines()))
        assert harness.agent_lines()[-1].startswith("note to the agent: warmdown")


async def test_awaiting_approval_shows_in_the_status_bar_and_approve_lets_it_train():
    script = (DEFAULT_SCRIPT[0], Experiment("keep", 0.99, "raise the LR", needs_approval=True))
    harness = Harness(script=script)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: harness.engine.awaiting.is_set())
        await pilot.pause()
        status = harness.status()
        assert "exp 1 │ awaiting-approval" in status
        assert "awaiting approval · F8/a approve · F6/v veto" in status and "gate on" in status
        await pilot.press("a")
        await until(pilot, ended(harness))
        assert harness.engine.commands == [Approve()]
        assert harness.statuses() == ["keep", "keep"]
        await pilot.press("5")
        await until(pilot, lambda: any("applied" in line for line in harness.agent_lines()))
        applied = [line for line in harness.agent_lines() if "#1 (raise the LR) trains" in line]
        assert applied == ["applied: approve: #1 (raise the LR) trains"]  # its echo is not repeated


async def test_veto_at_the_gate_drops_the_proposal():
    script = (DEFAULT_SCRIPT[0], Experiment("keep", 0.99, "raise the LR", needs_approval=True), DEFAULT_SCRIPT[2])
    harness = Harness(script=script)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: harness.engine.awaiting.is_set())
        await pilot.press("f6")
        await until(pilot, ended(harness))
        assert harness.engine.commands == [Veto()]
        assert harness.statuses() == ["keep", "discard"]  # the vetoed proposal never ran


async def test_status_bar_shows_gate_rate_cost_and_memory():
    usage = {"prompt_tokens": 1834, "completion_tokens": 212, "cost_usd": 0.0021}
    script = (DEFAULT_SCRIPT[0], Experiment("keep", 0.99, "raise the LR", memory_gb=44.5, agent_usage=usage),
              Experiment("discard", 0.995, "lower the LR", memory_gb=43.0, agent_usage=usage))
    harness = Harness(script=script, end_when_done=False)
    async with harness.app.run_test(size=(120, 24)) as pilot:
        await until(pilot, lambda: len(harness.statuses()) == 3)
        harness.clock.now += 1800  # three rows in half an hour
        await pilot.press("g")
        await until(pilot, lambda: "gate on" in harness.status())
        status = harness.status()
        assert "6.0 exp/h" in status and "$0.0042" in status and "peak 43.0 GB" in status
        await pilot.press("g")
        await until(pilot, lambda: "gate off" in harness.status())


async def test_no_program_pane_without_a_program():
    harness = idle()
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await started(pilot, harness)
        await pilot.press("6")
        assert harness.shown() == ["results", "log"] and not harness.app.query("#program")
        titles = {command.title for command in harness.app.get_system_commands(harness.app.screen)}
        assert {"Veto", "Approve", "Force-keep", "Revert last keep", "Steer the agent"} <= titles
        assert "Show program" not in titles


async def test_a_session_that_starts_with_the_gate_on_says_so():
    harness = Harness(script=DEFAULT_SCRIPT[:2], gate=True)
    async with harness.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: harness.engine.awaiting.is_set())
        await pilot.pause()
        assert "gate on" in harness.status() and "awaiting approval" in harness.status()
        await pilot.press("f9")  # the gate goes off, which the engine confirms
        await until(pilot, lambda: "gate off" in harness.status())
        await pilot.press("f8")
        await until(pilot, ended(harness))
        assert harness.engine.commands == [SetApprovalGate(False), Approve()]
        assert harness.statuses() == ["keep", "keep"]
