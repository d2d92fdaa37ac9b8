"""Autosave, SIGTERM and crash recovery, driven through storyterm.story's Autosaver and Session."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest

from storyterm.story import Draft, load_draft, save_draft

SIZE = (120, 32)


async def test_typing_is_autosaved_without_pressing_save(make_app, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.autosaver.typing_delay_s = 0.0  # the policy's delay is the story package's business
        await pilot.press(*"A Demon hunter")
        for _ in range(100):
            await pilot.pause(0.05)
            if app.draft_path is not None and not app.autosaver.dirty:
                break
        assert app.draft_path is not None and app.status.info.saved
        assert load_draft(app.draft_path).text == "A Demon hunter"


async def test_an_opened_app_with_nothing_typed_leaves_no_file(make_app, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("ctrl+q")
    assert not list((tmp_path / "drafts").glob("*.json"))


async def test_sigterm_saves_then_exits(make_app, tmp_path: Path) -> None:
    app = make_app(handle_signals=True)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press(*"A serial killer")
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):
            await pilot.pause(0.02)
            if app.return_code is not None:
                break
    drafts = list((tmp_path / "drafts").glob("*.json"))
    assert len(drafts) == 1 and load_draft(drafts[0]).text == "A serial killer"


def crashed_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """A draft "lost.json" left open by a process that died: (the draft, the sessions folder, its marker)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    from storyterm.story.session import sessions_dir

    draft_path = tmp_path / "drafts" / "lost.json"
    draft_path.parent.mkdir(parents=True)
    save_draft(Draft(title="Lost", text="The night the power failed"), draft_path)
    markers = sessions_dir()
    markers.mkdir(parents=True)
    crashed_marker = markers / "dead.json"  # a marker without a held lock: its process died
    crashed_marker.write_text(json.dumps({"pid": 2**22 + 7, "host": socket.gethostname(),
                                          "draft_path": str(draft_path)}))
    return draft_path, markers, crashed_marker


async def test_crash_is_offered_for_recovery_and_the_marker_cleared(
    make_app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    draft_path, markers, crashed_marker = crashed_session(tmp_path, monkeypatch)
    app = make_app(use_session=True)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "did not close cleanly" in str(app.screen.query_one(".dialog-title").render())
        await pilot.click("#yes")
        await pilot.pause()
        assert app.draft.text == app.editor.text == "The night the power failed"
        assert app.draft_path == draft_path
        assert not crashed_marker.exists()
        live = [p for p in markers.glob("*.json")]
        assert len(live) == 1 and json.loads(live[0].read_text())["draft_path"] == str(draft_path.resolve())
        await pilot.press("ctrl+q")
    assert not list(markers.glob("*.json"))  # a clean quit removes the app's own marker


async def test_no_recovery_question_for_the_draft_already_reopened(
    make_app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    draft_path, _markers, crashed_marker = crashed_session(tmp_path, monkeypatch)
    app = make_app(use_session=True, draft_path=draft_path)  # the last draft, reopened by the relaunch
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not app.screen.query(".dialog-title")
        assert app.draft.text == "The night the power failed"
        assert not crashed_marker.exists()


async def test_an_unreadable_draft_is_left_alone_and_typing_saves_elsewhere(make_app, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"format_version": 1, "title": ')
    app = make_app(draft_path=broken)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.autosaver.typing_delay_s = 0.0
        await pilot.press(*"A zombie")
        for _ in range(100):
            await pilot.pause(0.05)
            if app.draft_path is not None and not app.autosaver.dirty:
                break
        assert app.draft_path is not None and app.draft_path != broken
        assert load_draft(app.draft_path).text == "A zombie"
    assert broken.read_bytes() == b'{"format_version": 1, "title": '
