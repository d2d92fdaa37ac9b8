"""What the side panels tell the app: sampler settings, memory, genre, instruct mode, a starter, the title.
A mixin of ``StorytermApp`` (handlers by Textual's naming convention, which works in a plain mixin where
``@on`` does not); the writer's choices are remembered in config.toml."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storyterm.config import PRESET_FIELDS, save_config
from storyterm.engine.errors import StorytermError
from storyterm.engine.prompt import opening_text, title_prompt
from storyterm.tui.model_loading import first_line
from storyterm.tui.model_modes import remembered_genre
from storyterm.tui.widgets.parameter_panel import MODEL_PRESET

if TYPE_CHECKING:
    from storyterm.tui.app import StorytermApp
    from storyterm.tui.widgets.genre_picker import GenrePicker
    from storyterm.tui.widgets.parameter_panel import ParameterPanel

    _Base = StorytermApp
else:
    _Base = object


class PanelEvents(_Base):
    def on_parameter_panel_settings_changed(self, message: ParameterPanel.SettingsChanged) -> None:
        before, after = self.draft.settings.to_dict(), message.settings.to_dict()
        # What the writer changes is theirs from now on: a checkpoint's defaults no longer fill it.
        self.config.settings_set |= {name for name in after if after[name] != before.get(name)}
        self.draft.settings = message.settings
        self.config.settings = message.settings
        self.config.preset = message.preset
        if message.preset == MODEL_PRESET:  # follow each checkpoint's own sampling, not remembered values
            self.config.settings_set -= PRESET_FIELDS
            self.config.preset = None
        elif message.preset is not None:  # a named preset is the writer's whole sampling style (as in config.toml)
            self.config.settings_set |= PRESET_FIELDS
        self._remember_config()
        self._story_changed()

    def on_parameter_panel_memory_changed(self, message: ParameterPanel.MemoryChanged) -> None:
        self.draft.memory = message.memory
        self._story_changed(typing=True)

    def on_genre_picker_genre_chosen(self, message: GenrePicker.GenreChosen) -> None:
        self.draft.genre = message.genre
        self.config.genre = remembered_genre(message.genre)
        self._remember_config()
        self._story_changed()

    def on_genre_picker_instruct_changed(self, message: GenrePicker.InstructChanged) -> None:
        self.config.instruct = message.instruct
        self._remember_config()
        self._update_status()
        self._schedule_context_usage(0)

    def on_genre_picker_starter_chosen(self, message: GenrePicker.StarterChosen) -> None:
        self.sync_editor()
        if self.generating:
            return
        if self.draft.text.strip():
            self.notify("Starters begin an empty story; press ctrl+n for a new draft.", timeout=3)
            return
        self.draft.set_text(opening_text(message.starter), coalesce=False)
        self._refresh_editor()
        self.editor.focus()
        self.editor.move_cursor(self.editor.document.end)
        self._story_changed()

    def on_genre_picker_title_submitted(self, message: GenrePicker.TitleSubmitted) -> None:
        self.sync_editor()
        self.draft.title = message.title
        if not self.draft.text.strip() and not self.generating and not self.instruct:
            self.draft.set_text(opening_text(title_prompt(message.title, self.picker.genre)), coalesce=False)
            self._refresh_editor()
        self.editor.focus()
        self.editor.move_cursor(self.editor.document.end)
        self._story_changed()

    def _remember_config(self) -> None:
        try:
            save_config(self.config, self.config_path)
        except (OSError, StorytermError) as error:
            self.notify(f"config not saved: {first_line(error)}", severity="warning")

    def watch_theme(self, theme: str) -> None:
        if getattr(self, "config", None) is not None and self.config.theme != theme and self.is_running:
            self.config.theme = theme
            self._remember_config()
