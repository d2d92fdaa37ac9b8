"""Managing the open draft from the editor: rename (the file name follows the title), delete to the trash and
restore from it, export as Markdown or plain text, and remembering which draft was open last.

A mixin of ``StorytermApp``: the file work is in ``story/`` (workspace, trash, export, recent); this only asks
the writer and reports."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from storyterm.engine.errors import StorytermError
from storyterm.story import list_drafts, load_draft
from storyterm.story.export import export_draft, format_for
from storyterm.story.recent import remember_last_draft
from storyterm.story.store import slugify
from storyterm.story.trash import move_to_trash, restore_from_trash, trash_dir
from storyterm.story.workspace import Workspace
from storyterm.tui.file_notes import file_note

if TYPE_CHECKING:
    from storyterm.tui.app import StorytermApp

    _Base = StorytermApp
else:
    _Base = object


class DraftActions(_Base):
    last_draft_record: Path | None = None   # where the open draft's path is remembered (None: nowhere)
    _remembered_path: Path | None = None

    def _remember_draft_path(self) -> None:
        path = self.draft_path
        if self.last_draft_record is not None and path is not None and path != self._remembered_path:
            self._remembered_path = path
            remember_last_draft(path, self.last_draft_record)

    def _adopt_picker_genre(self) -> None:
        """The draft takes the genre the picker settled on; a draft with words is told when that was not its
        own (an imported draft has none; another model may lack it)."""
        chosen, own = self.picker.genre, self.draft.genre
        if chosen == own:
            return
        self.draft.genre = chosen
        if chosen is None or not self.draft.text.strip():
            return
        why = "This draft had no genre" if own is None else f"This model has no {own} genre"
        self.notify(f"{why}: it continues as {chosen}. Pick another in the Genre list (f3 shows the panels).",
                    timeout=8)

    # -- rename -------------------------------------------------------------------------------------------------

    def action_rename(self) -> None:
        from storyterm.tui.screens.prompt import PromptScreen

        self.push_screen(
            PromptScreen("Rename the draft — its new title", self.draft.title,
                         "The file name follows the title; another draft's file is never replaced."),
            self._renamed,
        )

    def _renamed(self, title: str | None) -> None:
        if not title or title == self.draft.title:
            return
        try:
            path = self.workspace.rename(title)
        except StorytermError as error:
            self.notify(str(error), title="Not renamed", severity="error", timeout=8)
            return
        if self.session is not None and self.draft_path is not None:
            self._session_call(self.session.set_draft, self.draft_path)
        self.picker.set_title(title)
        self.notify(f"Renamed to {title} ({path.name})", timeout=4)
        self._update_status()

    # -- delete and restore -------------------------------------------------------------------------------------

    def action_delete_draft(self) -> None:
        from storyterm.tui.screens.confirm import ConfirmScreen

        if self.generating:
            self.notify("Stop the generation first (escape).", severity="warning")
            return
        trash = trash_dir(self.drafts_dir)
        question = (f"Move “{self.draft.title}” to the trash ({trash})? "
                    "“Restore a draft” in the command palette brings it back.")
        self.push_screen(ConfirmScreen(question, yes="Move to trash", no="Keep it"), self._delete_confirmed)

    def _delete_confirmed(self, yes: bool | None) -> None:
        if not yes:
            return
        if not self.save_now(force=True) or self.draft_path is None:
            return  # the draft could not be saved, so it cannot go to the trash either: nothing is deleted
        try:
            trashed = move_to_trash(self.draft_path, self.drafts_dir)
        except StorytermError as error:
            self.notify(str(error), title="Not deleted", severity="error", timeout=8)
            return
        self._switch_draft(Workspace.new(self._new_draft(), self.drafts_dir))
        self.picker.set_title("")
        self.notify(f"Moved to the trash: {trashed}", timeout=5)

    def action_restore_draft(self) -> None:
        from storyterm.tui.screens.open_draft import OpenDraftScreen

        folder = trash_dir(self.drafts_dir)
        try:
            infos = list_drafts(folder) if folder.is_dir() else []
        except StorytermError as error:
            self.notify(str(error), severity="error")
            infos = []
        rows = [(f"{info.title} · {info.words} words · {info.path.name}", info.path) for info in infos]
        self.push_screen(OpenDraftScreen(rows, folder), self._restore_chosen)

    def _restore_chosen(self, path: Path | None) -> None:
        if path is None:
            return
        try:
            load_draft(path)  # only a readable draft is moved back
            restored = restore_from_trash(path, self.drafts_dir)
        except StorytermError as error:
            self.notify(str(error), title="Not restored", severity="error", timeout=8)
            return
        self._open_chosen(restored)
        self.notify(f"Restored {restored.name}", timeout=4)

    # -- export -------------------------------------------------------------------------------------------------

    def action_export(self) -> None:
        from storyterm.tui.screens.prompt import PromptScreen

        suggestion = Path.cwd() / f"{slugify(self.draft.title)}.md"
        self.push_screen(
            PromptScreen("Export the story to a file", str(suggestion),
                         "Markdown (.md) or plain text (.txt); an existing file is never replaced."),
            self._export_to,
        )

    def _export_to(self, answer: str | None) -> None:
        if not answer:
            return
        path = Path(os.path.expanduser(answer))
        try:
            fmt = format_for(path)
            if os.path.lexists(path):
                raise StorytermError(f"{path}: exists; choose another name")
            export_draft(self.draft, path, fmt)
        except StorytermError as error:
            self.notify(str(error), title="Not exported", severity="error", timeout=8)
            return
        kind = "Markdown" if fmt == "md" else "plain text"
        self.notify(file_note(f"Exported as {kind}:", path.absolute(), self.size.width), timeout=5)
