"""F1: every action with the key it is bound to now (config overrides included)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close", show=False)]

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog", classes="dialog"):
            yield Label("storyterm — keys", classes="dialog-title")
            table: DataTable[str] = DataTable(id="help-table", cursor_type="row", show_cursor=False)
            table.add_columns("Key", "Action")
            for keys, description in self.rows:
                table.add_row(keys, description)
            yield table
            yield Static(
                "Pending text (dim italic) is not part of the story until accepted. "
                "Rebind keys in the [keys] table of config.toml. Ctrl+P opens the command palette.",
                classes="dialog-hint",
                markup=False,  # "[keys]" is text, not markup
            )

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
