"""The left-hand panel: the loaded model's genres (or free mode), suggested starters and a title prompt."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

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

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.genres: list[str] = []
        self.genre: str | None = None
        self._known = False

    def compose(self) -> ComposeResult:
        yield Label("Genre", classes="panel-title")
        yield OptionList(Option("loading model…", disabled=True), id="genres")
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

    def set_genres(self, genres: list[str], selected: str | None) -> None:
        """The loaded model's genres; ``[]`` is free mode. Keeps ``selected`` when the model knows it."""
        self.genres = list(genres)
        self._known = True
        option_list = self.query_one("#genres", OptionList)
        option_list.clear_options()
        if genres:
            option_list.add_options(Option(Content(genre_label(g)), id=g) for g in genres)
            self.genre = selected if selected in genres else genres[0]
            option_list.highlighted = genres.index(self.genre)
        else:
            option_list.add_option(Option("Free mode (no genres in this model)", id=FREE_MODE))
            option_list.highlighted = 0
            self.genre = None
        self._fill_starters()

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
