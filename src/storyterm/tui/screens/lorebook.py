"""The lorebook editor: add, edit and delete the draft's world-info entries (keys, text, always on), and set how
far back keys are looked for and the lorebook's token budget. Edits apply to a copy; Done (or escape) hands the
checked lorebook back, Cancel drops the changes. Entries left entirely blank are dropped."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from storyterm.engine.errors import SettingsError
from storyterm.engine.lorebook import Lorebook, LorebookEntry, parse_keys


LINE_CHARS = 70  # an entry's line in the list, so each entry is one row in an 80-column terminal


def entry_line(entry: LorebookEntry) -> str:
    """One line of the entry list: ● for always on, the keys, then the start of the text."""
    keys = ", ".join(entry.keys) or "(no keys)"
    mark = "● " if entry.always_on else "  "
    text = " ".join(entry.text.split()) or "(no text)"
    line = f"{mark}{keys} — {text}"
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…"


def _blank(entry: LorebookEntry) -> bool:
    return not entry.keys and not entry.text.strip() and not entry.always_on


class LorebookScreen(ModalScreen[Lorebook | None]):
    BINDINGS = [Binding("escape", "done", "Done", show=False)]

    def __init__(self, lorebook: Lorebook) -> None:
        super().__init__()
        self.original = lorebook
        self.entries: list[LorebookEntry] = list(lorebook.entries) or [LorebookEntry()]
        self.index = 0

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="lorebook-dialog"):
            yield Label("Lorebook — read while a key is in the story's last lines", classes="dialog-title")
            yield OptionList(*self._options(), id="lore-entries", compact=True, markup=False)
            yield Input(placeholder="keys, comma-separated: Anna, the nurse", id="lore-keys", compact=True)
            yield TextArea(id="lore-text", soft_wrap=True, compact=True,
                           placeholder="text: what the model should know while a key is in the story")
            with Horizontal(classes="lore-row"):
                yield Checkbox("Always on", id="lore-always", compact=True)
                yield Label("Scan")
                yield Input(str(self.original.scan_chars), id="lore-scan", compact=True, type="integer")
                yield Label("chars  Budget")
                yield Input(str(self.original.token_budget), id="lore-budget", compact=True, type="integer")
                yield Label("tokens")
            yield Static("", id="lore-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("New entry", id="lore-new", compact=True)
                yield Button("Delete entry", id="lore-delete", compact=True)
                yield Button("Cancel", id="lore-cancel", compact=True)
                yield Button("Done", variant="primary", id="lore-done", compact=True)

    def on_mount(self) -> None:
        self._show(0)
        self.query_one("#lore-keys", Input).focus()

    # -- the list ------------------------------------------------------------------------------------------------

    def _options(self) -> list[Option]:
        return [Option(entry_line(entry)) for entry in self.entries]

    def _refresh_list(self) -> None:
        entries = self.query_one("#lore-entries", OptionList)
        entries.clear_options()
        entries.add_options(self._options())
        entries.highlighted = self.index

    def _show(self, index: int) -> None:
        """Select entry ``index`` and fill the form from it."""
        self.index = index
        entry = self.entries[index]
        # The change events this fills the form with arrive later and rebuild the same entry: no edit.
        self.query_one("#lore-keys", Input).value = ", ".join(entry.keys)
        self.query_one("#lore-text", TextArea).text = entry.text
        self.query_one("#lore-always", Checkbox).value = entry.always_on
        self.query_one("#lore-entries", OptionList).highlighted = index

    @on(OptionList.OptionHighlighted, "#lore-entries")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        # Only the writer's moves in the list (the highlight this screen sets itself arrives late, mid-typing).
        if event.option_list.has_focus and event.option_index != self.index:
            self._show(event.option_index)

    # -- editing -------------------------------------------------------------------------------------------------

    @on(Input.Changed, "#lore-keys")
    @on(TextArea.Changed, "#lore-text")
    @on(Checkbox.Changed, "#lore-always")
    def _edited(self) -> None:
        entry = LorebookEntry(
            parse_keys(self.query_one("#lore-keys", Input).value),
            self.query_one("#lore-text", TextArea).text,
            self.query_one("#lore-always", Checkbox).value,
        )
        if entry == self.entries[self.index]:
            return
        self.entries[self.index] = entry
        option_list = self.query_one("#lore-entries", OptionList)
        option_list.replace_option_prompt_at_index(self.index, entry_line(self.entries[self.index]))
        self.query_one("#lore-error", Static).update("")

    @on(Button.Pressed, "#lore-new")
    def action_new_entry(self) -> None:
        self.entries.append(LorebookEntry())
        self._refresh_list()
        self._show(len(self.entries) - 1)
        self.query_one("#lore-keys", Input).focus()

    @on(Button.Pressed, "#lore-delete")
    def action_delete_entry(self) -> None:
        del self.entries[self.index]
        if not self.entries:
            self.entries.append(LorebookEntry())
        self.index = min(self.index, len(self.entries) - 1)
        self._refresh_list()
        self._show(self.index)

    # -- closing -------------------------------------------------------------------------------------------------

    def lorebook(self) -> Lorebook:
        """The edited lorebook, checked (SettingsError with a one-line message)."""
        numbers = {}
        for name in ("scan", "budget"):
            value = self.query_one(f"#lore-{name}", Input).value.strip()
            try:
                numbers[name] = int(value)
            except ValueError:
                raise SettingsError(f"{'Scan' if name == 'scan' else 'Budget'} must be a whole number") from None
        entries = tuple(entry for entry in self.entries if not _blank(entry))
        return Lorebook(entries, numbers["scan"], numbers["budget"]).validate()

    @on(Button.Pressed, "#lore-done")
    def action_done(self) -> None:
        try:
            lorebook = self.lorebook()
        except SettingsError as error:
            self.query_one("#lore-error", Static).update(f"{error}. Fix it, or Cancel.")
            return
        self.dismiss(lorebook)

    @on(Button.Pressed, "#lore-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
