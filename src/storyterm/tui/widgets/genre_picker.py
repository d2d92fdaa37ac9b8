"""The left-hand panel: the loaded model's genres — its genre tokens, or genres in words (a header sentence) with
free mode as an explicit choice — the instruct switch for chat models, suggested starters and a title prompt."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Label, OptionList, Switch
from textual.widgets.option_list import Option

from storyterm.engine.genres import FREE_GENRE
from storyterm.engine.prompt import genre_label
from storyterm.tui.starters import starters_for

FREE_MODE = "__free__"


class GenrePicker(Vertical):
    class GenreChosen(Message):
        def __init__(self, genre: str | None) -> None:
            super().__init__()
            self.genre = genre

    class StarterChosen(Message):
        def __init__(self, starter: str) -> None:
            super().__init__()
            self.starter = starter

    class TitleSubmitted(Message):
        def __init__(self, title: str) -> None:
            super().__init__()
            self.title = title

    class InstructChanged(Message):
        def __init__(self, instruct: bool) -> None:
            super().__init__()
            self.instruct = instruct

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.genres: list[str] = []
        self.genre: str | None = None
        self._known = False

    def compose(self) -> ComposeResult:
        yield Label("Genre", classes="panel-title", id="genre-title")
        yield OptionList(Option("loading model…", disabled=True), id="genres")
        with Horizontal(id="instruct-row"):
            yield Switch(value=False, id="instruct", tooltip="Ask the chat model to continue the story")
            yield Label("Instruct", id="instruct-label")
        yield Label("Starters", classes="panel-title")
        yield OptionList(id="starters")
        yield Label("Title", classes="panel-title")
        yield Input(placeholder="A title → a prompt", id="title", compact=True)

    @property
    def highlighted_starter(self) -> str | None:
        starters = self.query_one("#starters", OptionList)
        if starters.highlighted is None or starters.option_count == 0:
            return None
        return str(starters.get_option_at_index(starters.highlighted).prompt)

    @property
    def title_text(self) -> str:
        return self.query_one("#title", Input).value.strip()

    def set_title(self, title: str) -> None:
        self.query_one("#title", Input).value = title

    def set_genres(self, genres: list[str], selected: str | None, *, in_words: bool = False) -> None:
        """The model's genres: its genre tokens, or (``in_words``) genres given in words, where free mode is one more
        choice (``selected`` = FREE_GENRE picks it). ``[]`` is free mode only. Keeps ``selected`` when offered."""
        self.genres = list(genres)
        self._known = True
        self.query_one("#genre-title", Label).update("Genre (in words)" if in_words else "Genre")
        option_list = self.query_one("#genres", OptionList)
        option_list.clear_options()
        option_list.add_options(Option(Content(genre_label(g)), id=g) for g in genres)
        if in_words or not genres:
            label = "Free (no genre)" if genres else "Free mode (no genres in this model)"
            option_list.add_option(Option(label, id=FREE_MODE))
        if selected in genres:
            self.genre = selected
        elif not genres or (in_words and selected == FREE_GENRE):
            self.genre = None
        else:
            self.genre = genres[0]
        option_list.highlighted = genres.index(self.genre) if self.genre is not None else len(genres)
        self._fill_starters()

    def set_instruct(self, available: bool, on: bool) -> None:
        """Show the instruct switch only for models with a chat template."""
        self.query_one("#instruct-row").display = available
        switch = self.query_one("#instruct", Switch)
        if switch.value != on:
            with switch.prevent(Switch.Changed):
                switch.value = on

    @on(Switch.Changed, "#instruct")
    def _instruct_switched(self, event: Switch.Changed) -> None:
        event.stop()
        self.post_message(self.InstructChanged(event.value))

    def _fill_starters(self) -> None:
        starters = self.query_one("#starters", OptionList)
        starters.clear_options()
        starters.add_options(starters_for(self.genre))

    @on(OptionList.OptionHighlighted, "#genres")
    def _genre_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        option_id = event.option.id
        if not self._known or option_id is None:
            return
        genre = None if option_id == FREE_MODE else option_id
        if genre != self.genre:
            self.genre = genre
            self._fill_starters()
            self.post_message(self.GenreChosen(genre))

    @on(OptionList.OptionSelected, "#genres")
    def _genre_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.query_one("#starters", OptionList).focus()

    @on(OptionList.OptionSelected, "#starters")
    def _starter_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.post_message(self.StarterChosen(str(event.option.prompt)))

    @on(Input.Submitted, "#title")
    def _title_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.post_message(self.TitleSubmitted(event.value.strip()))
