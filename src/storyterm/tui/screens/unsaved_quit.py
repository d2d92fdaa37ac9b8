"""Quit with work the draft's file does not hold: save as, quit anyway (the emergency copy stays), or stay."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class UnsavedQuitScreen(ModalScreen[str | None]):
    """Dismisses with "save_as", "quit", or None (stay)."""

    BINDINGS = [Binding("escape", "stay", "Stay", show=False)]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="unsaved-quit-dialog"):
            yield Label(self.question, classes="dialog-title", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save as…", variant="primary", id="save_as")
                yield Button("Quit without saving", variant="error", id="quit")
                yield Button("Stay", id="stay")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "stay" else event.button.id)

    def action_stay(self) -> None:
        self.dismiss(None)
