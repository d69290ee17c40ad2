"""Snapshots of the app at fixed terminal sizes (update with `pytest --snapshot-update`
after checking the new SVGs by eye)."""

from __future__ import annotations

import pytest
from test_tui_support import parse, scripted, write_bundle

from compass_tui.tui.app import build_app


@pytest.fixture
def app(tmp_path, monkeypatch):
    # A relative bundle path keeps the header identical from one machine to the next.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    # the header shows the time the engineer watched: a fixed clock keeps it identical
    monkeypatch.setattr("compass_tui.tui.screens.investigation.clock", lambda: 1000.0)
    write_bundle(tmp_path / "bundle")
    return build_app(parse("--bundle", "bundle", "--no-store"), investigate=scripted())


async def finished(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


def test_finished_80x24(app, snap_compare):
    assert snap_compare(app, terminal_size=(80, 24), run_before=finished)


def test_evidence_open_120x40(app, snap_compare):
    async def open_evidence(pilot) -> None:
        await finished(pilot)
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=open_evidence)


def test_help_80x24(app, snap_compare):
    async def help_screen(pilot) -> None:
        await finished(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=help_screen)


def test_too_small_60x20(app, snap_compare):
    assert snap_compare(app, terminal_size=(60, 20), run_before=finished)


def test_replace_the_answer_80x24(app, snap_compare):
    async def second_confirm(pilot) -> None:
        await finished(pilot)
        await pilot.press("c", "j", "c")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=second_confirm)


def test_filter_and_verdict_rows_120x40(app, snap_compare):
    async def filtered(pilot) -> None:
        await finished(pilot)
        await pilot.press("c", "slash", *"pool")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=filtered)


def test_command_mode_80x24(app, snap_compare):
    async def command(pilot) -> None:
        await finished(pilot)
        await pilot.press("colon", *"th")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=command)


def test_help_filtered_80x24(app, snap_compare):
    async def help_filtered(pilot) -> None:
        await finished(pilot)
        await pilot.press("question_mark", *"copy")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=help_filtered)


def test_evidence_cursor_and_chat_120x40(app, snap_compare):
    async def chat(pilot) -> None:
        await finished(pilot)
        await pilot.press("i", *"why not bad_deploy@checkout", "enter")
        await pilot.pause()
        await pilot.press("escape", "1", "enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=chat)
