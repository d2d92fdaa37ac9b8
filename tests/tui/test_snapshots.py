"""Snapshots of the main states (pytest-textual-snapshot). The scripted engine gives the same words every run;
regenerate the baselines with ``pytest tests/tui/test_snapshots.py --snapshot-update`` after a deliberate change."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import Input, TextArea

SIZE = (120, 32)


async def steady(pilot: Pilot) -> None:
    """Model loaded, no toasts, no blinking cursors: the same pixels every run."""
    app = pilot.app
    await app.workers.wait_for_complete()
    await pilot.pause()
    for widget in app.query(TextArea):
        widget.cursor_blink = False
        widget.refresh()  # its cursor row may have been drawn before it got focus (a loaded machine's timing)
    for widget in app.query(Input):
        widget.cursor_blink = False
    app.clear_notifications()
    app.update_context_usage()  # normally debounced by a timer: settle it now
    await pilot.pause()


def test_empty(snap_compare, make_app, scripted_engine) -> None:
    app = make_app(engine_factory=scripted_engine)
    assert snap_compare(app, terminal_size=SIZE, run_before=steady)


def test_generating(snap_compare, make_app, scripted_engine) -> None:
    engines = []

    def factory(loaded):
        engines.append(scripted_engine(loaded, pause_after=4))
        return engines[-1]

    async def run_before(pilot: Pilot) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.press(*"Luigi enters a haunted resort.")
        await pilot.press("ctrl+g")
        while not engines[0].paused.is_set():
            await pilot.pause(0.02)
        while pilot.app.editor.pending_text.count(" ") < 4:
            await pilot.pause(0.02)
        for widget in pilot.app.query(TextArea):
            widget.cursor_blink = False
        for widget in pilot.app.query(Input):
            widget.cursor_blink = False
        pilot.app.save_now()  # the autosave may or may not have come yet: make the "●" the same every run
        pilot.app.clear_notifications()
        pilot.app.update_context_usage()
        await pilot.pause()

    assert snap_compare(make_app(engine_factory=factory), terminal_size=SIZE, run_before=run_before)


def test_pending(snap_compare, make_app, scripted_engine) -> None:
    async def run_before(pilot: Pilot) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.press(*"Luigi enters a haunted resort.")
        await pilot.press("ctrl+g")
        await pilot.app.workers.wait_for_complete()
        await pilot.press("ctrl+r")
        await steady(pilot)

    assert snap_compare(make_app(engine_factory=scripted_engine), terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare, make_app, scripted_engine) -> None:
    async def run_before(pilot: Pilot) -> None:
        await steady(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(make_app(engine_factory=scripted_engine), terminal_size=SIZE, run_before=run_before)


def test_model_modal(snap_compare, make_app, scripted_engine) -> None:
    async def run_before(pilot: Pilot) -> None:
        await steady(pilot)
        await pilot.press("f2")
        await pilot.pause()
        pilot.app.screen.query_one("#kind-other").value = True
        pilot.app.screen.query_one("#source").value = "/models/my-checkpoint"  # not the temp path of this run
        for widget in pilot.app.screen.query(Input):
            widget.cursor_blink = False
        await pilot.pause()

    assert snap_compare(make_app(engine_factory=scripted_engine), terminal_size=SIZE, run_before=run_before)
