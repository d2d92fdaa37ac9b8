"""The lorebook editor, the author's note form and the context viewer, driven by keys at 80x24: edits reach the
draft (and its file) and the next generation's request; bad values are named in one line and nothing closes;
user text is shown literally."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, OptionList, Static

from storyterm.engine.lorebook import Lorebook, LorebookEntry
from storyterm.story import load_draft
from storyterm.story.draft_context import DraftContext
from storyterm.tui.screens.context_viewer import ContextViewerScreen
from storyterm.tui.screens.lorebook import LINE_CHARS, LorebookScreen, entry_line
from storyterm.tui.screens.story_context import StoryContextScreen, stops_from_text, stops_to_text

SIZE = (80, 24)


async def _ready(app, pilot) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()


def _static_text(screen, selector: str) -> list[str]:
    return [str(widget.content) for widget in screen.query(selector).results(Static)]


async def test_lorebook_screen_adds_edits_and_deletes_entries(make_app, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await pilot.press(*"The ghost screams.")
        await pilot.press("f5")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LorebookScreen)
        assert app.focused is screen.query_one("#lore-keys", Input)
        await pilot.press(*"ghost, [b]spirit[/b]", "tab", *"The ghost is Anna's mother.")
        await pilot.click("#lore-new")
        await pilot.press(*"Mars", "tab", *"Red.")
        await pilot.click("#lore-new")
        await pilot.press(*"doomed", "tab", *"Deleted soon.")
        await pilot.click("#lore-delete")
        await pilot.pause()
        options = screen.query_one("#lore-entries", OptionList)
        assert options.option_count == 2
        assert str(options.get_option_at_index(0).prompt) == "  ghost, [b]spirit[/b] — The ghost is Anna's mother."
        # The list's first line is shown literally, not as bold markup.
        assert "ghost, [b]spirit[/b]" in options.render_line(0).text
        await pilot.press("escape")  # closing keeps the edits
        await pilot.pause()
        assert not isinstance(app.screen, LorebookScreen)
        assert app.draft.context.lorebook == Lorebook((
            LorebookEntry(("ghost", "[b]spirit[/b]"), "The ghost is Anna's mother."),
            LorebookEntry(("Mars",), "Red."),
        ))
        request = app.current_request()
        assert request.lorebook == app.draft.context.lorebook
        path = app.draft_path
        assert path is not None
    assert load_draft(path).context.lorebook.entries[1].text == "Red."


async def test_lorebook_screen_refuses_an_entry_without_keys_and_cancel_drops_changes(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await pilot.press("f5")
        await pilot.pause()
        await pilot.press("tab", *"Text but no key.")
        await pilot.press("escape")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LorebookScreen)  # nothing closes
        error = _static_text(screen, "#lore-error")[0]
        assert "no keys and is not always on" in error and "\n" not in error
        await pilot.click("#lore-cancel")
        await pilot.pause()
        assert not isinstance(app.screen, LorebookScreen)
        assert app.draft.context == DraftContext()


async def test_story_context_form_saves_note_depth_banned_words_and_stops(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await pilot.press("f10")
        await pilot.pause()
        assert isinstance(app.screen, StoryContextScreen)
        await pilot.press(*"Style: tense", "tab", "backspace", "1", "tab", *"suddenly, very", "tab",
                          *"THE END | \\n\\n")
        await pilot.press("tab", "tab", "enter")  # the Save button
        await pilot.pause()
        assert not isinstance(app.screen, StoryContextScreen)
        context = app.draft.context
        assert (context.authors_note, context.authors_note_depth) == ("Style: tense", 1)
        assert context.banned_words == ("suddenly", "very") and context.stop_sequences == ("THE END", "\n\n")
        request = app.current_request()
        assert (request.authors_note, request.authors_note_depth, request.banned_words, request.stop_sequences) == (
            "Style: tense", 1, ("suddenly", "very"), ("THE END", "\n\n"))


async def test_story_context_form_names_a_bad_depth_and_stays(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await pilot.press("f10")
        await pilot.pause()
        await pilot.press("tab", "backspace", *"500", "enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, StoryContextScreen)
        assert "from 0 to 100" in _static_text(screen, "#story-context-error")[0]
        await pilot.press("escape")  # still invalid: escape does not close either
        assert isinstance(app.screen, StoryContextScreen)
        await pilot.click("#story-context-cancel")
        await pilot.pause()
        assert app.draft.context == DraftContext()


def test_an_entry_is_one_row_in_the_list() -> None:
    long = entry_line(LorebookEntry(("harbour",), "The harbour froze.\n" * 40, always_on=True))
    assert len(long) == LINE_CHARS and long.startswith("● harbour — The harbour froze. The") and long.endswith("…")
    assert entry_line(LorebookEntry((), "")) == "  (no keys) — (no text)"


def test_stop_sequences_round_trip_through_the_one_line_form() -> None:
    stops = ("THE END", "\n\n", "a|b", "\t")
    assert stops_from_text(stops_to_text(stops)) == stops


async def test_context_viewer_shows_the_parts_literally_with_token_counts(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        app.draft.context = DraftContext(
            authors_note="tense, [i]now[/i]", authors_note_depth=0,
            lorebook=Lorebook((LorebookEntry(("ghost",), "The [b]ghost[/b] is Anna's mother."),
                               LorebookEntry(("Mars",), "Never read here."))))
        app.draft.memory = "Anna is a nurse."
        await pilot.press(*"The ghost screams [red]loud[/red].")
        await pilot.press("f9")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ContextViewerScreen)
        titles = _static_text(screen, ".context-part-title")
        texts = _static_text(screen, ".context-part-text")
        assert [title.split(" — ")[0] for title in titles[:5]] == [
            "Header", "Memory", "Lorebook: ghost", "Story", "Author's note"]
        assert texts[:5] == [f"<BOS> <{app.picker.genre}>", " [Anna is a nurse.]",
                             " [The [b]ghost[/b] is Anna's mother.]", " The ghost screams [red]loud[/red].",
                             " [tense, [i]now[/i]]"]
        prepared = app.engine.prepare(app.current_request())
        assert [int(title.split(" — ")[1].split()[0]) for title in titles[:5]] == [
            part.tokens for part in prepared.parts]
        assert titles[5] == "Nothing trimmed: everything fits."
        assert f"{len(prepared.input_ids)} of {app.loaded.context_window} tokens" in _static_text(
            screen, "#context-summary")[0]
        await pilot.press("f9")  # the same key closes it
        await pilot.pause()
        assert not isinstance(app.screen, ContextViewerScreen)


async def test_context_viewer_says_what_was_trimmed(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        app.draft.set_text("The ghost screams in the old house. " * 40)
        app._refresh_editor()
        await pilot.press("f9")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ContextViewerScreen)
        assert "Trimmed" in _static_text(screen, ".context-trimmed")
        assert any(text.startswith("• story: its oldest") for text in _static_text(screen, ".context-part-text"))
        prepared = app.engine.prepare(app.current_request())
        unused = app.loaded.context_window - 12 - len(prepared.input_ids)  # make_app's max_new_tokens = 12
        assert unused > 0  # smart context anchored the window at a sentence with room to grow
        assert f"{unused} more are free" in _static_text(screen, "#context-summary")[0]
        await pilot.press("escape")
