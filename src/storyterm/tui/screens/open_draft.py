"""Ctrl+O: pick a draft from the drafts folder (newest first) or type a path. Titles and names are shown literally."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option


class OpenDraftScreen(ModalScreen[Path | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, drafts: list[tuple[str, Path]], folder: Path) -> None:
        super().__init__()
        self.drafts = drafts
        self.folder = folder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="open-dialog"):
            yield Label(f"Open a draft — {self.folder}", classes="dialog-title", markup=False)
            if self.drafts:
                yield OptionList(*(Option(Content(label), id=str(path)) for label, path in self.drafts), id="draft-list")
            else:
                yield Label("No drafts saved yet.", id="no-drafts")
            yield Input(placeholder="…or a path to a draft file, then Enter", id="draft-path", compact=True)

    @on(OptionList.OptionSelected, "#draft-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(Path(str(event.option.id)))

    @on(Input.Submitted, "#draft-path")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(Path(event.value.strip()).expanduser())

    def action_cancel(self) -> None:
        self.dismiss(None)
