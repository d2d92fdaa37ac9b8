"""Widgets on their own: the editor's pending passage, the parameter panel's validation, the genre picker."""

from __future__ import annotations

from textual.app import App, ComposeResult

from storyterm.engine.settings import PRESETS, SamplerSettings
from storyterm.tui.starters import STARTERS, starters_for
from storyterm.tui.widgets.editor import StoryEditor, editor_form
from storyterm.tui.widgets.genre_picker import GenrePicker
from storyterm.tui.widgets.parameter_panel import ParameterPanel, matching_preset


class EditorApp(App[None]):
    def compose(self) -> ComposeResult:
        yield StoryEditor("Once", id="editor")


async def test_pending_passage_is_styled_and_never_part_of_the_story() -> None:
    app = EditorApp()
    async with app.run_test() as pilot:
        editor = app.query_one(StoryEditor)
        editor.show("Once upon", "")
        editor.append_pending(" a time\nthere")
        editor.append_pending(" was")
        await pilot.pause()
        assert editor.text == "Once upon a time\nthere was"
        assert editor.story_text == "Once upon" and editor.pending_text == " a time\nthere was"
        assert editor.pending_start == (0, 9)
        pending_style = editor.get_component_rich_style("story-editor--pending")
        assert pending_style.italic
        first, second = editor.get_line(0), editor.get_line(1)
        assert any(span.start == 9 and span.style == pending_style for span in first.spans)
        assert not any(span.start < 9 and span.style == pending_style for span in first.spans)
        assert any(span.start == 0 and span.style == pending_style for span in second.spans)
        editor.accept_pending()
        assert editor.story_text == editor.text and not editor.get_line(1).spans


async def test_typing_with_a_pending_passage_removes_it_first() -> None:
    app = EditorApp()
    async with app.run_test() as pilot:
        editor = app.query_one(StoryEditor)
        editor.focus()
        editor.show("Once", " upon a time")
        editor.move_cursor(editor.document.end)
        await pilot.press("!")
        assert editor.text == "Once!" and editor.pending_text == ""


async def test_read_only_while_generating_refuses_keys() -> None:
    app = EditorApp()
    async with app.run_test() as pilot:
        editor = app.query_one(StoryEditor)
        editor.focus()
        editor.set_generating(True)
        editor.append_pending(" streamed")
        await pilot.press("x", "backspace")
        assert editor.text == "Once streamed" and editor.pending_text == " streamed"


def test_editor_form_turns_every_line_break_into_newline() -> None:
    assert editor_form("a\r\nb\rc\x1cd\u2028e") == "a\nb\nc\nd\ne"
    assert editor_form("plain text") == "plain text"


class PanelApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.changes: list[SamplerSettings] = []

    def compose(self) -> ComposeResult:
        yield ParameterPanel(SamplerSettings(), id="panel")

    def on_parameter_panel_settings_changed(self, message: ParameterPanel.SettingsChanged) -> None:
        self.changes.append(message.settings)


async def test_panel_shows_the_first_bad_value_and_keeps_the_last_good_settings() -> None:
    app = PanelApp()
    async with app.run_test(size=(60, 40)) as pilot:
        panel = app.query_one(ParameterPanel)
        panel.context_window = 128
        panel.query_one("#top_p").value = "1.5"
        await pilot.pause()
        error = str(panel.query_one("#top_p-error").render())  # in words, right under the field
        assert error == "Top-p must be between 0 and 1" == panel.error
        assert panel.query_one("#top_p").has_class("-invalid")
        assert panel.settings == SamplerSettings() and app.changes == []
        panel.query_one("#top_p").value = "0.5"
        panel.query_one("#max_new_tokens").value = "500"  # over the context window
        await pilot.pause()
        assert "context window" in str(panel.query_one("#max_new_tokens-error").render())
        assert str(panel.query_one("#top_p-error").render()) == ""
        panel.query_one("#max_new_tokens").value = "60"
        await pilot.pause()
        assert str(panel.query_one("#max_new_tokens-error").render()) == "" and panel.error is None
        assert app.changes[-1] == SamplerSettings(max_new_tokens=60, top_p=0.5)


async def test_panel_preset_sets_the_sampling_style_but_keeps_length() -> None:
    app = PanelApp()
    async with app.run_test(size=(60, 40)) as pilot:
        panel = app.query_one(ParameterPanel)
        panel.query_one("#max_new_tokens").value = "42"
        await pilot.pause()
        panel.query_one("#preset").value = "wild"
        await pilot.pause()
        assert panel.settings.temperature == PRESETS["wild"].temperature
        assert panel.settings.max_new_tokens == 42
        assert matching_preset(panel.settings) == "wild"
        assert panel.query_one("#temperature").value == str(PRESETS["wild"].temperature)


async def test_panel_word_guard_switch_and_min_p_typical_p_fields() -> None:
    app = PanelApp()
    async with app.run_test(size=(60, 40)) as pilot:
        panel = app.query_one(ParameterPanel)
        assert panel.query_one("#word_guard").value is True
        await pilot.click("#word_guard")
        await pilot.pause()
        assert app.changes[-1] == SamplerSettings(word_guard=False)
        panel.query_one("#min_p").value = "1.5"
        await pilot.pause()
        assert str(panel.query_one("#min_p-error").render()) == "Min-p must be between 0 and 1 (0 = off)"
        assert panel.query_one("#min_p").has_class("-invalid")
        panel.query_one("#min_p").value = "0.05"
        panel.query_one("#typical_p").value = "0.9"
        await pilot.pause()
        assert app.changes[-1] == SamplerSettings(word_guard=False, min_p=0.05, typical_p=0.9)
        panel.set_settings(SamplerSettings())
        await pilot.pause()
        assert panel.query_one("#word_guard").value is True and panel.query_one("#min_p").value == "0.0"


async def test_panel_word_guard_switch_without_a_word_list_is_off_disabled_and_says_why() -> None:
    app = PanelApp()
    async with app.run_test(size=(60, 40)) as pilot:
        panel = app.query_one(ParameterPanel)
        switch, note = panel.query_one("#word_guard"), panel.query_one("#word_guard-note")
        assert not note.display
        panel.set_word_list(False)
        await pilot.pause()
        assert switch.disabled and switch.value is False
        assert note.display and str(note.render()) == "No word list: guard off"
        await pilot.click("#word_guard")
        panel.query_one("#min_p").value = "0.05"
        await pilot.pause()
        # The writer's choice is kept (not pretended off) for the next model that has a list.
        assert app.changes[-1] == SamplerSettings(min_p=0.05) and switch.value is False
        panel.set_settings(SamplerSettings(word_guard=True))
        await pilot.pause()
        assert switch.value is False
        panel.set_word_list(True)
        await pilot.pause()
        assert not switch.disabled and switch.value is True and not note.display


class PickerApp(App[None]):
    def compose(self) -> ComposeResult:
        yield GenrePicker(id="picker")


async def test_picker_lists_model_genres_with_starters_and_free_mode() -> None:
    app = PickerApp()
    async with app.run_test(size=(40, 40)) as pilot:
        picker = app.query_one(GenrePicker)
        picker.set_genres(["superhero", "horror"], "horror")
        await pilot.pause()
        assert picker.genre == "horror"
        starters = picker.query_one("#starters")
        assert [str(starters.get_option_at_index(i).prompt) for i in range(starters.option_count)] == STARTERS["horror"]
        picker.set_genres([], None)
        await pilot.pause()
        assert picker.genre is None
        assert picker.query_one("#starters").option_count == len(starters_for(None))


def test_seed_starters_are_all_there() -> None:
    assert {"Batman", "Spider-Man", "Superman", "Gotham city is under attack", "Darkseid", "Thanos",
            "The Justice League", "The Avengers"} <= set(STARTERS["superhero"])
    assert "Luigi enters a haunted resort" in STARTERS["horror"]
    assert "After discovering time travel," in STARTERS["sci_fi"]
    assert "An undercover cop poses as a gangster" in STARTERS["action"]
    assert "A serial killer" in STARTERS["thriller"]
