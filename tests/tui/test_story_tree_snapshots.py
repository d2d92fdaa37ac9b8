"""Snapshots of the story tree (f12) at 80x24 in the dark theme and 120x40 in the light one. The scripted engine
gives the same words every run; regenerate with ``--snapshot-update`` after a deliberate change."""

from __future__ import annotations

from textual.pilot import Pilot

from tests.tui.test_snapshots import steady


async def write_a_small_tree(pilot: Pilot) -> None:
    """Two takes at the first spot (the second kept), a second passage, a third one pending; the tree open on it
    with the other take unfolded."""
    app = pilot.app
    await app.workers.wait_for_complete()
    await pilot.press(*"Luigi enters a haunted resort.")
    for keys in (("ctrl+g",), ("ctrl+r",), ("tab", "ctrl+g"), ("tab", "ctrl+g")):
        await pilot.press(*keys)
        await app.workers.wait_for_complete()
        await pilot.pause()
    for passage in app.draft.passages:
        passage.created_at = "2026-01-02T03:04:05+00:00"  # the same pixels every run
    await steady(pilot)
    await pilot.press("f12")
    await pilot.pause()
    await pilot.pause()
    await pilot.press("up", "up", "right", "down")  # onto the first passage, unfold its other take, go there
    await pilot.pause()


def test_story_tree_80x24_dark(snap_compare, make_app, scripted_engine) -> None:
    assert snap_compare(make_app(engine_factory=scripted_engine), terminal_size=(80, 24),
                        run_before=write_a_small_tree)


def test_story_tree_120x40_light(snap_compare, make_app, scripted_engine) -> None:
    async def run_before(pilot: Pilot) -> None:
        pilot.app.theme = "textual-light"
        await write_a_small_tree(pilot)

    assert snap_compare(make_app(engine_factory=scripted_engine), terminal_size=(120, 40), run_before=run_before)
