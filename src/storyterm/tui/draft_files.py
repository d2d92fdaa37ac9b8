"""The open draft's file from the editor: autosave, save, save as, new, open, and switching the editor to another
draft. A mixin of ``StorytermApp``; the file work is ``story/workspace.py`` (no Textual), this asks and reports.

Saving follows ``storyterm.story.autosave``: typing is saved ~1.5 s after the first unsaved keystroke (a 0.25 s
tick), structural changes (accept, generate, switch, dismiss, undo, settings) at once, and on quit/SIGTERM.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyterm.config import DEFAULT_KEYS
from storyterm.engine.errors import StorytermError
from storyterm.story import Draft, DraftInfo, list_drafts, load_draft, new_draft_path
from storyterm.story.workspace import Workspace
from storyterm.tui.file_notes import file_note
from storyterm.tui.keymap import pretty_keys
from storyterm.tui.model_loading import first_line
from storyterm.tui.model_modes import draft_genre

if TYPE_CHECKING:
    from storyterm.tui.app import StorytermApp

    _Base = StorytermApp
else:
    _Base = object


class DraftFiles(_Base):
    _save_error: str | None = None  # the last failure reported (one notification per distinct failure)

    def _new_draft(self) -> Draft:
        return Draft(genre=draft_genre(self.config.genre), settings=self.config.settings)

    def _worth_saving(self) -> bool:
        return self.workspace.worth_saving()

    def _autosave_tick(self) -> None:
        self.sync_editor()
        try:
            saved = self.workspace.maybe_save()
        except StorytermError as error:
            self._report_save_error(error)
            return
        if saved:
            self._after_save()

    def save_now(self, *, force: bool = False) -> bool:
        """Save at once if anything is unsaved; False (with a notification) when the save failed."""
        try:
            saved = self.workspace.save_now(force=force)
        except StorytermError as error:
            self._report_save_error(error)
            return False
        if saved or force:
            self._after_save()
        return True

    def _after_save(self) -> None:
        self.draft.break_undo_group()  # a save marks a pause: the next keystrokes start a new undo step
        self._save_error = None
        if self.session is not None and self.session.draft_path != self.draft_path:
            self._session_call(self.session.set_draft, self.draft_path)
        self._update_status()

    def _report_save_error(self, error: StorytermError) -> None:
        if str(error) != self._save_error:
            self._save_error = str(error)
            keys = pretty_keys({**DEFAULT_KEYS, **self.config.keys}["save_as"])
            self.notify(f"{error} ({keys}: save as)", title="Not saved", severity="error", timeout=10)
        self._update_status()

    def _session_call(self, method: Callable[..., Any], *args: Any) -> None:
        try:
            method(*args)
        except (StorytermError, OSError) as error:
            self.notify(f"session marker: {first_line(error)}", severity="warning")

    def action_save(self) -> None:
        self.draft.break_undo_group()
        if not self.autosaver.dirty and self.draft_path is not None:
            self.notify(file_note("Saved", self.draft_path, self.size.width), timeout=2)
        elif self.save_now(force=True):
            self.notify(file_note("Saved", self.draft_path, self.size.width), timeout=2)

    def action_save_as(self, then_quit: bool = False) -> None:
        from storyterm.tui.screens.save_as import SaveAsScreen

        folder = self.workspace.target.parent
        suggestion = new_draft_path(self.draft.title, folder)

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            try:
                written = self.workspace.save_as(path)
            except StorytermError as error:
                self.notify(str(error), title="Not saved", severity="error", timeout=10)
                return
            self._after_save()
            self.notify(file_note("Saved as", written, self.size.width), timeout=3)
            if then_quit:
                self._quit_saved()

        self.push_screen(SaveAsScreen(suggestion), chosen)

    def action_new(self) -> None:
        if not self.save_now():
            return
        self._switch_draft(Workspace.new(self._new_draft(), self.drafts_dir))
        self.picker.set_title("")

    def action_open(self) -> None:
        from storyterm.tui.screens.open_draft import OpenDraftScreen

        try:
            infos: list[DraftInfo] = list_drafts(self.drafts_dir)
        except StorytermError as error:
            self.notify(str(error), severity="error")
            infos = []
        rows = [(draft_label(info), info.path) for info in infos]
        self.push_screen(OpenDraftScreen(rows, self.drafts_dir), self._open_chosen)

    def _open_chosen(self, path: Path | None) -> None:
        if path is None:
            return
        try:
            draft = load_draft(path)
        except StorytermError as error:
            self.notify(str(error), title="Not opened", severity="error")
            return
        if not self.save_now():
            return
        self._switch_draft(Workspace.opened(draft, path))

    def _switch_draft(self, workspace: Workspace) -> None:
        self.workspace = workspace
        draft = workspace.draft
        if self.session is not None:
            self._session_call(self.session.set_draft, workspace.path)
        self.panel.set_settings(draft.settings)
        self.panel.set_memory(draft.memory)
        self.picker.set_title(draft.title if draft.title != "Untitled" else "")
        if self.loaded is not None:
            self._show_genres(draft.genre)
        self.editor.show("", "")
        self._refresh_editor()
        self.editor.move_cursor(self.editor.document.end)
        self.editor.focus()
        self._update_status()
        self._schedule_context_usage(0)


def draft_label(info: DraftInfo) -> str:
    if info.error:
        return f"{info.path.name} — unreadable: {info.error}"
    genre = f" · {info.genre}" if info.genre else ""
    return f"{info.title}{genre} · {info.words} words · {info.modified:%Y-%m-%d %H:%M} · {info.path.name}"
