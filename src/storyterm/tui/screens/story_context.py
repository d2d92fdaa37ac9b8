"""The draft's author's note and its depth, banned words and stop sequences in one form. Save (enter, or escape)
hands back the checked fields; Cancel drops the changes. A bad value is named in one line and nothing closes."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from storyterm.engine.errors import SettingsError
from storyterm.story.draft_context import DraftContext


def split_list(text: str) -> tuple[str, ...]:
    """``"suddenly, very"`` → ``("suddenly", "very")``."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def stops_from_text(text: str) -> tuple[str, ...]:
    """Stop sequences typed in one line, separated by ``|``; ``\\n`` is a newline, ``\\|`` a bar."""
    marker = "\x00"
    items = text.replace("\\|", marker).split("|")
    return tuple(item.strip().replace(marker, "|").replace("\\n", "\n").replace("\\t", "\t")
                 for item in items if item.strip())


def stops_to_text(stops: tuple[str, ...]) -> str:
    return " | ".join(stop.replace("|", "\\|").replace("\n", "\\n").replace("\t", "\\t") for stop in stops)


class StoryContextScreen(ModalScreen[DraftContext | None]):
    BINDINGS = [Binding("escape", "save", "Save", show=False)]

    def __init__(self, context: DraftContext) -> None:
        super().__init__()
        self.context = context

    def compose(self) -> ComposeResult:
        context = self.context
        with Vertical(classes="dialog", id="story-context-dialog"):
            yield Label("Author's note, banned words, stop sequences", classes="dialog-title")
            yield Label("Author's note — steers the next passage, e.g. Style: tense")
            yield Input(context.authors_note, id="note", compact=True, placeholder="(none)")
            with Horizontal(classes="lore-row"):
                yield Label("Depth: sentences before the story's end (0 = after it)")
                yield Input(str(context.authors_note_depth), id="note-depth", compact=True, type="integer")
            yield Label("Banned words — never written, in any spelling; comma-separated")
            yield Input(", ".join(context.banned_words), id="banned", compact=True, placeholder="(none)")
            yield Label("Stop sequences — the passage ends there; | between, \\n: new line", markup=False)
            yield Input(stops_to_text(context.stop_sequences), id="stops", compact=True, placeholder="(none)")
            yield Static("", id="story-context-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="story-context-cancel", compact=True)
                yield Button("Save", variant="primary", id="story-context-save", compact=True)

    def on_mount(self) -> None:
        self.query_one("#note", Input).focus()

    def edited(self) -> DraftContext:
        """The form as a DraftContext, checked (SettingsError with a one-line message)."""
        depth_text = self.query_one("#note-depth", Input).value.strip()
        try:
            depth = int(depth_text)
        except ValueError:
            raise SettingsError("the author's note depth must be a whole number of sentences") from None
        return self.context.with_changes(
            authors_note=self.query_one("#note", Input).value.strip(),
            authors_note_depth=depth,
            banned_words=split_list(self.query_one("#banned", Input).value),
            stop_sequences=stops_from_text(self.query_one("#stops", Input).value),
        ).validate()

    @on(Input.Submitted)
    @on(Button.Pressed, "#story-context-save")
    def action_save(self) -> None:
        try:
            context = self.edited()
        except SettingsError as error:
            self.query_one("#story-context-error", Static).update(f"{error}. Fix it, or Cancel.")
            return
        self.dismiss(context)

    @on(Button.Pressed, "#story-context-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
