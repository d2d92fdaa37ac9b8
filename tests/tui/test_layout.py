"""Small terminals, focus mode, and the loop's rough edges: tab outside the editor, invalid fields, browsing
alternatives vs undo, ctrl+r after an edit, pending text's colour, help, palette, load progress."""

from __future__ import annotations

import threading

import pytest
from textual.widgets import DataTable, Input, Label, Static

from storyterm.engine.loading import ModelSpec
from storyterm.tui.widgets.editor import StoryEditor
from storyterm.tui.widgets.main_layout import PLACEHOLDER_WITH_PANELS
from tests.tui.test_app_loop import settle, type_and_generate, wait_until

LINE_70 = "The old lighthouse keeper had not spoken to anyone for eleven years no"
assert len(LINE_70) == 70


def panels_shown(app) -> bool:
    return app.query_one("#genre-picker").display and app.query_one("#parameters").display


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_small_terminals_are_in_focus_mode_and_show_the_story(make_app, size) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        assert not panels_shown(app)
        assert app.focused is app.editor
        assert "f3" in app.editor.placeholder and "pick a starter" not in app.editor.placeholder
        await pilot.press(*LINE_70)
        await pilot.pause()
        editor = app.editor
        assert editor.region.width >= size[0] - 2
        if size[0] >= 80:
            assert editor.wrapped_document.height == 1  # the 70-character line sits on one row
        rows = [editor.render_line(y).text for y in range(editor.wrapped_document.height)]
        assert "".join(row.strip() for row in rows).replace(" ", "") == LINE_70.replace(" ", "")


async def test_focus_mode_key_toggles_the_panels_at_any_size(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("f3")
        await pilot.pause()
        assert panels_shown(app)
        assert app.editor.placeholder == PLACEHOLDER_WITH_PANELS  # the starters are in sight now
        assert app.editor.region.width >= 30  # the panels shrink so the story keeps room
        app.query_one("#temperature", Input).focus()
        await pilot.press("f3")
        await pilot.pause()
        assert not panels_shown(app) and app.focused is app.editor  # focus never stays in a hidden panel
    app = make_app()
    async with app.run_test(size=(120, 32)) as pilot:
        await settle(app, pilot)
        assert panels_shown(app)
        await pilot.press("f3")
        await pilot.pause()
        assert not panels_shown(app) and app.editor.region.width >= 110


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 40)])
async def test_sampling_labels_stay_whole_words_apart_from_their_values(make_app, size) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        if not panels_shown(app):
            await pilot.press("f3")
            await pilot.pause()
        labels = list(app.query("#fields .field-label").results(Label))
        values = [app.query_one(f"#{name}") for name in ("do_sample", "word_guard", "trim_sentences",
                                                          "max_new_tokens", "temperature", "top_k", "top_p")]
        for label, value in zip(labels, values):
            assert label.region.right < value.region.x, str(label.render())  # a space between them
        temperature = next(label for label in labels if str(label.render()) == "Temperature")
        assert temperature.region.height == 1  # not "Temperatur" + "e"


async def test_tab_outside_the_editor_moves_focus_and_keeps_the_passage_pending(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(120, 32)) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "A ghost")
        pending = app.draft.pending
        assert pending is not None
        app.query_one("#genres").focus()
        await pilot.press("tab", "tab")
        await pilot.pause()
        assert app.draft.pending is pending and app.draft.text == "A ghost"
        assert not isinstance(app.focused, StoryEditor)
        accept = next(c for c in app.get_system_commands(app.screen) if c.title == "Accept")
        await accept.callback()  # the palette accepts whatever has focus
        await pilot.pause()
        assert app.draft.pending is None and app.draft.text == "A ghost" + pending.text


async def test_tab_in_the_editor_accepts(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "A ghost")
        pending = app.draft.pending
        await pilot.press("tab")
        await pilot.pause()
        assert app.draft.text == "A ghost" + pending.text


async def test_an_invalid_field_blocks_generation_and_says_why_next_to_it(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(120, 32)) as pilot:
        await settle(app, pilot)
        await pilot.press(*"A ghost")
        field = app.query_one("#temperature", Input)
        field.value = "99"
        await pilot.pause()
        note = app.query_one("#temperature-error", Static)
        assert note.display and str(note.render()) == "Temperature must be at most 10"
        assert app.panel.error == "Temperature must be at most 10"
        await pilot.press("ctrl+g")
        await settle(app, pilot)
        assert app.draft.pending is None and not app.draft.passages
        assert any("Temperature must be at most 10" in str(n.message) for n in app._notifications)
        field.value = "0.9"
        await pilot.pause()
        assert not note.display and app.panel.error is None
        await pilot.press("ctrl+g")
        await settle(app, pilot)
        assert app.draft.pending is not None
        assert app.draft.pending.settings["temperature"] == 0.9


async def test_browsing_alternatives_is_one_undo_step(make_app) -> None:
    app = make_app(settings_toml="max_new_tokens = 8\nnum_alternatives = 3\n")
    async with app.run_test(size=(120, 32)) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "Gotham")
        assert len(app.draft.alternatives()) == 3
        shown = app.draft.pending.id
        for key in ("f8", "f8", "f7", "f8"):
            await pilot.press(key)
            await pilot.pause()
        assert app.draft.pending.id != shown
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert app.draft.pending is not None and app.draft.pending.id == shown  # all the browsing, one step
        await pilot.press("ctrl+y")
        await pilot.pause()
        assert app.draft.pending.id != shown


async def test_regenerate_after_a_mid_story_edit_says_what_it_does(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(120, 32)) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "Gotham")
        await pilot.press("tab")
        app.editor.move_cursor((0, 0))
        await pilot.press(*"In ")
        await pilot.pause()
        app.clear_notifications()
        await pilot.press("ctrl+r")
        await settle(app, pilot)
        assert any("nothing to regenerate" in str(n.message) for n in app._notifications)
        assert app.draft.pending is not None and app.draft.text.startswith("In Gotham")


async def test_pending_text_has_its_own_colour_in_every_theme(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.editor.show("Story.", " Pending.")
        for theme in sorted(app.available_themes):
            app.theme = theme
            await pilot.pause()
            segments = [s for s in app.editor.render_line(0) if s.text.strip()]
            story = next(s for s in segments if "Story" in s.text)
            pending = next(s for s in segments if "Pending" in s.text)
            # ANSI themes keep the terminal's colours: there the pending text is dim (SGR 2), which every
            # terminal draws fainter.
            assert story.style.color != pending.style.color or (pending.style.dim and not story.style.dim), theme


async def test_help_at_80x24_scrolls_wraps_long_actions_and_shows_keys_literally(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("f1")
        await pilot.pause()
        hint = app.screen.query_one(".dialog-hint", Static)
        assert "[keys] table" in str(hint.render())
        assert hint.region.bottom <= 24  # the hint stays on screen: the table scrolls instead
        table = app.screen.query_one("#help-table", DataTable)
        assert table.max_scroll_y > 0
        assert table.max_scroll_x == 0  # a long action wraps: nothing hides off to the right
        heights = {str(table.get_row_at(i)[1]): row.height for i, row in enumerate(table.ordered_rows)}
        assert heights["Story tree: read any branch, make it the story, continue it"] == 2
        assert heights["Open a draft"] == 1


async def test_palette_lists_each_command_once(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(120, 32)) as pilot:
        await settle(app, pilot)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert titles.count("Quit") == 1
        assert len(titles) == len(set(titles))


async def test_status_bar_shows_genre_and_words_and_fits_80_columns(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press(*"Three small words")
        await pilot.pause()
        text = str(app.status.render())
        assert app.draft.genre and app.draft.genre in text
        assert "3 words" in text and app.status.info.load_state in text
        assert len(text) <= 78


async def test_switching_models_shows_every_progress_message(make_app, tiny_loaded) -> None:
    release = threading.Event()

    def loader(spec: ModelSpec, progress):
        if spec.source == "second":
            progress("Locating model…")
            progress("Loading weights…")
            release.wait(timeout=20)
        return tiny_loaded

    app = make_app(loader=loader)
    async with app.run_test(size=(120, 32)) as pilot:
        await settle(app, pilot)
        assert app.status.info.load_state == "ready"
        app._model_chosen(ModelSpec(source="second"))
        await wait_until(pilot, lambda: app.status.info.load_state == "loading weights…")
        release.set()
        await wait_until(pilot, lambda: app.status.info.load_state == "ready")


async def test_model_switcher_tab_reaches_the_path_field_and_typing_picks_local(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("f2")
        await pilot.pause()
        app.screen.query_one("#source-kind").focus()
        await pilot.press("tab")
        await pilot.pause()
        assert app.focused is app.screen.query_one("#source")
        await pilot.press(*"/tmp/x")
        await pilot.pause()
        assert app.screen.query_one("#kind-other").value


def test_engine_errors_point_editor_users_to_the_dialog() -> None:
    from storyterm.tui.screens.model_switch import for_editor

    message = for_editor("model 'a/b' is not in the local Hugging Face cache and the hub cannot be reached; "
                         "use --model builtin or --model with a local checkpoint directory")
    assert "--model" not in message and "built-in model" in message and "(F2)" in message
    assert for_editor("no CUDA GPU; use --device cpu") == "no CUDA GPU; choose device cpu (F2)"


async def test_a_long_confirm_question_wraps_instead_of_being_cut(make_app) -> None:
    from storyterm.tui.screens.confirm import ConfirmScreen

    app = make_app()
    question = ("storyterm did not close cleanly. Reopen a-rather-long-draft-name-[draft].json (autosaved "
                "2026-11-30 05:00)? Either way the draft stays in your drafts folder (ctrl+o).")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.push_screen(ConfirmScreen(question, yes="Reopen", no="Not now"))
        await pilot.pause()
        label = app.screen.query_one(".dialog-title")
        assert label.size.height >= 2
        shown = " ".join(" ".join(label.render_line(y).text.split()) for y in range(label.size.height))
        assert "05:00)?" in shown and "[draft]" in shown and "(ctrl+o)." in shown


def footer_keys(app) -> list[tuple[str, bool]]:
    """(description, shown) of each footer key; the command palette's key is left out."""
    from textual.widgets._footer import FooterKey

    return [(key.description, bool(key.display)) for key in app.screen.query(FooterKey)
            if not key.has_class("-command-palette")]


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 40)])
async def test_the_footer_shows_whole_keys_and_always_help(make_app, size) -> None:
    """Textual's footer cut its keys at the right edge ("f1 He" at 60 columns with a passage pending); keys that do
    not fit are left out whole, the least important first, and Help always stays."""
    from textual.widgets._footer import FooterKey

    from storyterm.tui.widgets.footer import StoryFooter

    app = make_app()
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "The ghost")
        await wait_until(pilot, lambda: app.draft.pending is not None)
        await pilot.pause()
        keys = footer_keys(app)
        shown = [description for description, displayed in keys if displayed]
        assert "Help" in shown and "Accept" in shown and "Generate" in shown
        footer = app.query_one(StoryFooter)
        (palette,) = footer.query(".-command-palette")
        for key in footer.query(FooterKey):
            if key.display and key is not palette:  # whole, left of the palette's key
                assert key.region.width == key.render().cell_len and key.region.right <= palette.region.x
        if size[0] >= 120:
            assert all(displayed for _description, displayed in keys)  # a wide screen shows every key
        if size[0] == 60:
            assert len(shown) < len(keys)  # something had to give way, and it was not Help


async def test_saved_toast_shows_the_file_name_and_a_short_folder_at_80_columns(make_app, tmp_path) -> None:
    from storyterm.tui.file_notes import toast_text_width

    folder = tmp_path / "a-rather-long-folder-for-the-drafts" / "drafts-of-a-nesting-writer"
    folder.mkdir(parents=True)
    app = make_app(draft_path=folder / "the-lighthouse-keeper.json")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press(*"The keeper")
        app.clear_notifications()
        await pilot.press("ctrl+s")
        await pilot.pause()
        (note,) = [n.message for n in app._notifications]
        name_line, folder_line = note.splitlines()
        assert name_line == "Saved the-lighthouse-keeper.json"
        assert folder_line.startswith("in …/") and folder_line.endswith("/drafts-of-a-nesting-writer")
        assert max(len(name_line), len(folder_line)) <= toast_text_width(80) == 37  # no line wraps in the toast


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_toasts_stand_above_the_status_bar_and_the_footer(make_app, size) -> None:
    from textual.widgets._toast import Toast

    from storyterm.tui.widgets.footer import StoryFooter

    app = make_app()
    async with app.run_test(size=size, notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press(*"The keeper")
        app.clear_notifications()
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.pause()
        (toast,) = app.screen.query(Toast)
        assert "Saved" in toast.render().plain
        status, footer = app.status.region, app.query_one(StoryFooter).region
        assert toast.region.height >= 2 and toast.region.bottom <= status.y < footer.y  # nothing of either hidden
        bottom_rows = [app.screen.get_widget_at(x, status.y)[0] for x in range(0, size[0], 7)]
        assert all(widget is app.status for widget in bottom_rows)
