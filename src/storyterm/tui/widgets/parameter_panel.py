"""The right-hand panel: every sampler setting with inline validation, presets, memory text."""

from __future__ import annotations

import re
from dataclasses import fields, replace

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Select, Static, Switch, TextArea

from storyterm.engine.errors import SettingsError
from storyterm.engine.settings import PRESETS, SamplerSettings

# Field → (label, Input type). Seed may be blank (random).
NUMBER_FIELDS: dict[str, tuple[str, str]] = {
    "max_new_tokens": ("Max new tokens", "integer"),
    "temperature": ("Temperature", "number"),
    "top_k": ("Top-k (0=off)", "integer"),
    "top_p": ("Top-p", "number"),
    "min_p": ("Min-p (0=off)", "number"),
    "typical_p": ("Typical-p", "number"),
    "repetition_penalty": ("Rep. penalty", "number"),
    "seed": ("Seed", "integer"),
    "num_alternatives": ("Alternatives", "integer"),
}
PRESET_FIELDS = ("temperature", "top_k", "top_p", "min_p", "typical_p", "repetition_penalty", "do_sample")
# Field → label of the on/off switches.
SWITCH_FIELDS: dict[str, str] = {"do_sample": "Sample", "word_guard": "Word guard",
                                 "trim_sentences": "End at sentence"}
# Shown under the word guard's switch, which is off and disabled, for a model without a word list.
NO_WORD_LIST = "No word list: guard off"  # one line in the panel; its tooltip says more
NO_WORD_LIST_TOOLTIP = ("This model has no words.txt (the word list of its training text; storyterm's GGUF exports "
                        "carry it), so the word guard cannot work with it")
SWITCH_TOOLTIPS = {"word_guard": "Lower-case and capitalised words only in spellings of the model's training text "
                                 "or of your story and Memory (models with a word list, such as the built-in one)",
                   "trim_sentences": "Finish the last sentence within a few more tokens, else cut it off"}


# The preset that follows the loaded checkpoint's generation_config.json (offered only when it sets something).
MODEL_PRESET = "model"


def matching_preset(settings: SamplerSettings, model_defaults: SamplerSettings | None = None) -> str | None:
    choices = ({MODEL_PRESET: model_defaults} if model_defaults is not None else {}) | PRESETS
    for name, values in choices.items():
        if all(getattr(values, f) == getattr(settings, f) for f in PRESET_FIELDS):
            return name
    return None


def preset_options(model_defaults: SamplerSettings | None) -> list[tuple[str, str]]:
    model = [("Model default", MODEL_PRESET)] if model_defaults is not None else []
    return model + [(name.capitalize(), name) for name in PRESETS]


class ParameterPanel(VerticalScroll):
    """Posts ``SettingsChanged`` whenever the fields form valid settings; shows the first error otherwise."""

    class SettingsChanged(Message):
        def __init__(self, settings: SamplerSettings, preset: str | None) -> None:
            super().__init__()
            self.settings = settings
            self.preset = preset

    class MemoryChanged(Message):
        def __init__(self, memory: str) -> None:
            super().__init__()
            self.memory = memory

    def __init__(self, settings: SamplerSettings, memory: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.model_defaults: SamplerSettings | None = None  # the checkpoint's own sampling, when it has any
        self.context_window: int | None = None
        self.word_list = True  # the loaded model has a word list: the word guard's switch works
        self._memory = memory
        self._loading = False
        self.error: str | None = None  # the first invalid field, in words; generation waits until it is fixed

    def compose(self) -> ComposeResult:
        yield Label("Sampling", classes="panel-title")
        yield Select(
            preset_options(self.model_defaults),
            value=matching_preset(self.settings, self.model_defaults) or Select.NULL,
            allow_blank=True,
            prompt="Custom",
            id="preset",
            compact=True,
        )
        with Grid(id="fields"):  # one grid instead of a row container per field: fewer widgets to style
            for name, label in SWITCH_FIELDS.items():
                yield Label(label, classes="field-label")
                yield Switch(value=self._switch_value(name, self.settings), id=name,
                             tooltip=SWITCH_TOOLTIPS.get(name))
                if name == "word_guard":
                    note = Static(NO_WORD_LIST, id="word_guard-note", classes="field-note", markup=False)
                    note.tooltip, note.display = NO_WORD_LIST_TOOLTIP, not self.word_list
                    yield note
            for name, (label, kind) in NUMBER_FIELDS.items():
                yield Label(label, classes="field-label")
                yield Input(self._format(getattr(self.settings, name)), type=kind, id=name, compact=True,
                            placeholder="random" if name == "seed" else "")
                yield Static("", id=f"{name}-error", classes="field-error", markup=False)
        yield Static("", id="settings-error", markup=False)
        yield Label("Memory (kept in context)", classes="panel-title")
        yield TextArea(self._memory, id="memory", soft_wrap=True, compact=True)

    # -- programmatic updates -----------------------------------------------------------------------------------

    def set_settings(self, settings: SamplerSettings) -> None:
        """Show ``settings`` (a preset was picked, a draft was opened) without echoing a change back."""
        self.settings = settings
        self._loading = True
        try:
            for name in NUMBER_FIELDS:
                self.query_one(f"#{name}", Input).value = self._format(getattr(settings, name))
            for name in SWITCH_FIELDS:
                self.query_one(f"#{name}", Switch).value = self._switch_value(name, settings)
            self.query_one("#preset", Select).value = matching_preset(settings, self.model_defaults) or Select.NULL
            self._show_error(None)
        finally:
            self.call_after_refresh(self._done_loading)

    def set_model_defaults(self, defaults: SamplerSettings | None) -> None:
        """Offer (or stop offering) "Model default": the loaded checkpoint's own sampling settings."""
        self.model_defaults = defaults
        self._loading = True
        try:
            select = self.query_one("#preset", Select)
            select.set_options(preset_options(defaults))
            select.value = matching_preset(self.settings, defaults) or Select.NULL
        finally:
            self.call_after_refresh(self._done_loading)

    def set_word_list(self, available: bool) -> None:
        """Follow the loaded model: without a word list the guard's switch shows off, disabled, and says why; the
        writer's setting is kept for a model that has one."""
        self.word_list = available
        switch = self.query_one("#word_guard", Switch)
        switch.disabled = not available
        with switch.prevent(Switch.Changed):  # the settings do not change: nothing to validate or echo
            switch.value = self._switch_value("word_guard", self.settings)
        self.query_one("#word_guard-note", Static).display = not available

    def _switch_value(self, name: str, settings: SamplerSettings) -> bool:
        return bool(getattr(settings, name)) and (name != "word_guard" or self.word_list)

    def set_memory(self, memory: str) -> None:
        self._memory = memory
        area = self.query_one("#memory", TextArea)
        if area.text != memory:
            area.load_text(memory)

    def _done_loading(self) -> None:
        self._loading = False

    # -- reading and validating ------------------------------------------------------------------------------

    def read_settings(self) -> SamplerSettings:
        """The settings the fields describe; raises SettingsError naming the first bad field."""
        values: dict[str, object] = {name: self.query_one(f"#{name}", Switch).value for name in SWITCH_FIELDS}
        if not self.word_list:  # the switch is disabled and shows off: the writer's choice stays as it was
            values["word_guard"] = self.settings.word_guard
        for name, (_label, kind) in NUMBER_FIELDS.items():
            raw = self.query_one(f"#{name}", Input).value.strip()
            if name == "seed" and not raw:
                values[name] = None
                continue
            try:
                values[name] = int(raw) if kind == "integer" else float(raw)
            except ValueError:
                expected = "a whole number" if kind == "integer" else "a number"
                raise SettingsError(f"{name} must be {expected}, got {raw!r}") from None
        known = {f.name for f in fields(SamplerSettings)}
        return SamplerSettings(**{k: v for k, v in values.items() if k in known}).validate(self.context_window)

    def _revalidate(self) -> None:
        if self._loading:
            return
        for name in NUMBER_FIELDS:
            self.query_one(f"#{name}", Input).remove_class("-invalid")
        try:
            settings = self.read_settings()
        except SettingsError as error:
            self._show_error(error)
            return
        self._show_error(None)
        if settings != self.settings:
            self.settings = settings
            preset = matching_preset(settings, self.model_defaults)
            self.query_one("#preset", Select).value = preset or Select.NULL
            self.post_message(self.SettingsChanged(settings, preset))

    def _show_error(self, error: SettingsError | None) -> None:
        """The message goes right under the bad field (the general line only when no field is to blame)."""
        bad_field = str(error).split(" ", 1)[0] if error is not None else None
        self.error = in_words(str(error)) if error is not None else None
        for name in NUMBER_FIELDS:
            note = self.query_one(f"#{name}-error", Static)
            note.update(self.error or "" if name == bad_field else "")
            note.set_class(name == bad_field, "-shown")
        general = self.query_one("#settings-error", Static)
        general.update(self.error if self.error and bad_field not in NUMBER_FIELDS else "")
        general.set_class(error is not None, "-error")
        if bad_field in NUMBER_FIELDS:
            self.query_one(f"#{bad_field}", Input).add_class("-invalid")

    @on(Input.Changed)
    def _field_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._revalidate()

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self._revalidate()

    @on(Select.Changed, "#preset")
    def _preset_changed(self, event: Select.Changed) -> None:
        event.stop()
        if self._loading or event.value is Select.NULL or not isinstance(event.value, str):
            return
        chosen = self.model_defaults if event.value == MODEL_PRESET else PRESETS.get(event.value)
        if chosen is None or matching_preset(self.settings, self.model_defaults) == event.value:
            return
        # A preset sets the sampling style; length, seed and alternatives stay the writer's.
        settings = replace(self.settings, **{f: getattr(chosen, f) for f in PRESET_FIELDS})
        if settings.num_alternatives > 1 and not settings.do_sample:
            settings = replace(settings, num_alternatives=1)
        self.set_settings(settings)
        self.post_message(self.SettingsChanged(settings, event.value))

    @on(TextArea.Changed, "#memory")
    def _memory_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        if event.text_area.text != self._memory:
            self._memory = event.text_area.text
            self.post_message(self.MemoryChanged(self._memory))

    @staticmethod
    def _format(value: object) -> str:
        return "" if value is None else str(value)


def in_words(message: str) -> str:
    """A SettingsError as a writer reads it: "top_p must be in (0, 1], got 5" -> "Top-p must be between 0 and 1"."""
    message = re.sub(r", got .*$", "", message)
    message = re.sub(r"must be in [(\[]\s*([^,]+),\s*([^)\]]+)[)\]]", r"must be between \1 and \2", message)
    message = message.replace("must be > 0 when sampling", "must be above 0 when Sample is on")
    message = message.replace("num_alternatives > 1 needs sampling on", "num_alternatives above 1 need Sample on")
    message = message.replace("must be below the model's", "must be less than the model's")
    name = message.split(" ", 1)[0]
    if name in NUMBER_FIELDS:
        message = NUMBER_FIELDS[name][0].replace(" (0=off)", "") + message[len(name):]
    elif name == "do_sample":
        message = "Sample" + message[len(name):]
    return message[:1].upper() + message[1:]
