"""Save as: a path (or a folder) for a copy of the draft; the copy becomes the draft's file."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class SaveAsScreen(ModalScreen[Path | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, suggestion: Path) -> None:
        super().__init__()
        self.suggestion = suggestion

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="save-as-dialog"):
            yield Label("Save as — a new file name, or a folder", classes="dialog-title")
            yield Input(str(self.suggestion), id="save-as-path", compact=True)
            yield Label("An existing file is never replaced. Enter saves, escape cancels.", classes="dialog-hint",
                        markup=False)

    @on(Input.Submitted, "#save-as-path")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(Path(event.value.strip()).expanduser())

    def action_cancel(self) -> None:
        self.dismiss(None)
