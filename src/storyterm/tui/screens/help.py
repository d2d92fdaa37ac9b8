"""F1: every action with the key it is bound to now (config overrides included)."""

from __future__ import annotations

from rich.text import Text
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
            yield DataTable(id="help-table", cursor_type="row", show_cursor=False)
            yield Static(
                "Pending text (dim italic) is not part of the story until accepted. "
                "Rebind keys in the [keys] table of config.toml. Ctrl+P opens the command palette.",
                classes="dialog-hint",
                markup=False,  # "[keys]" is text, not markup
            )

    def on_resize(self) -> None:
        """Fill the table for the width it has: a long action wraps onto a second line instead of being cut off."""
        table: DataTable[Text] = self.query_one("#help-table", DataTable)
        key_width = max([len("Key"), *(len(keys) for keys, _ in self.rows)])
        spare = table.size.width - key_width - 2 * 2 * table.cell_padding - table.styles.scrollbar_size_vertical
        table.clear(columns=True)
        table.add_column(Text("Key"), width=key_width)
        table.add_column(Text("Action"), width=max(20, spare))
        for keys, description in self.rows:
            table.add_row(Text(keys), Text(description), height=None)

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
