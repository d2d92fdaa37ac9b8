"""Rough edges a writer meets: the footer follows the loop's state, the chosen genre stays visible."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import OptionList
from textual.widgets._footer import FooterKey

from storyterm.tui.app import StorytermApp

APP_SIZE = (120, 32)


async def settle(app: StorytermApp, pilot: Pilot) -> None:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


def footer_actions(app: StorytermApp) -> set[str]:
    return {key.description for key in app.query(FooterKey) if not key.disabled}


async def test_the_footer_drops_accept_once_nothing_is_pending(make_app, scripted_engine) -> None:
    app = make_app(engine_factory=scripted_engine)
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press(*"The house", "ctrl+g")
        await settle(app, pilot)
        assert app.draft.pending is not None and "Accept" in footer_actions(app)
        await pilot.press("tab")
        await pilot.pause()
        assert app.draft.pending is None
        assert "Accept" not in footer_actions(app) and "Stop" not in footer_actions(app)
        await pilot.press("ctrl+g")
        await settle(app, pilot)
        assert "Accept" in footer_actions(app)
        await pilot.press(*" and")  # typing over the pending passage dismisses it
        await pilot.pause()
        await pilot.pause()
        assert app.draft.pending is None and "Accept" not in footer_actions(app)


async def test_the_chosen_genre_stands_out_while_the_editor_has_focus(make_app) -> None:
    app = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        genres = app.picker.query_one("#genres", OptionList)
        assert app.focused is app.editor and genres.highlighted is not None
        chosen = genres.get_component_rich_style("option-list--option-highlighted")
        plain = genres.get_component_rich_style("option-list--option")
        assert chosen.bold and chosen.bgcolor != plain.bgcolor
