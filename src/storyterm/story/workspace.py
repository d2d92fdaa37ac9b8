"""The open draft and its file: which file it is saved in, when, and what happens when saving fails. No Textual.

A new draft has no file until its first words are saved. That first save **claims** a file name exclusively
(create, never replace): two windows started at once both propose ``untitled.json``, the first to save gets it
and the other gets ``untitled-2.json``; neither ever writes over the other's story. After the claim, saves go
through ``save_draft`` (atomic, with a ``.bak``, refusing a file another program changed).

When a save fails (disk full, read-only folder, another window changed the file), the work still exists in
memory. ``save_as`` writes a copy under another name or folder and makes it the draft's file;
``emergency_copy`` writes the draft to the state folder (``platformdirs.user_state_path("storyterm") /
"emergency"``), which the TUI does before quitting with unsaved work, whatever the writer answers.

Usage (the TUI drives the timers, see ``autosave.py``)::

    workspace, warning = Workspace.open(path, drafts_dir, new_draft)   # warning: the file could not be read
    workspace.maybe_save()        # every tick; raises DraftFileError
    workspace.save_now()          # after structural changes, on quit
    workspace.save_as(Path("~/elsewhere/story.json"))
    workspace.emergency_copy()    # -> the copy's path
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import platformdirs

from storyterm.engine.errors import StorytermError

from .atomic_write import NameTaken, backup_path, write_atomic
from .autosave import Autosaver
from .draft import Draft
from .draft_bytes import encode_draft
from .file_errors import DraftFileError
from .overwrite_guard import record_stamp
from .store import DRAFT_SUFFIX, load_draft, new_draft_path, save_draft, slugify

MAX_NAME_TRIES = 1000


def emergency_dir() -> Path:
    """Where unsaved drafts go when their own file cannot be written (the state folder, not the drafts folder:
    a full or read-only drafts folder is the usual reason)."""
    return platformdirs.user_state_path("storyterm") / "emergency"


def claim_draft_file(draft: Draft, preferred: Path) -> Path:
    """Save a draft that has no file yet: at ``preferred`` if nobody has that name, else at the next free name
    beside it (``story-2.json``…). Never replaces an existing file. Returns the path written."""
    preferred = Path(preferred)
    content = _encode(draft, preferred)
    candidates = [preferred]
    for _ in range(MAX_NAME_TRIES):
        path = candidates.pop() if candidates else new_draft_path(preferred.stem, preferred.parent)
        try:
            write_atomic(path, content, exclusive=True)
        except NameTaken:
            continue
        record_stamp(path)
        return path
    raise DraftFileError(preferred.parent, "could not find a free file name for the draft")


def write_new_draft_file(draft: Draft, path: Path) -> Path:
    """Save-as: write ``draft`` to ``path``, which must not exist yet (a copy never replaces another file)."""
    path = Path(path)
    content = _encode(draft, path)
    try:
        write_atomic(path, content, exclusive=True)
    except NameTaken:
        raise DraftFileError(path, "not saved: a file with this name exists; choose another name") from None
    record_stamp(path)
    return path


def _encode(draft: Draft, path: Path) -> bytes:
    try:
        return encode_draft(draft)
    except (ValueError, TypeError) as error:
        raise DraftFileError(path, f"not saved: the draft holds a value JSON cannot store ({error})") from None


class Workspace:
    """The open draft, the file it is saved in (``path``, None until the first save claimed one) and its
    autosaver. ``target`` is where the next save goes."""

    def __init__(self, draft: Draft, target: Path, *, path: Path | None, saved: bool,
                 emergency_folder: Path | None = None) -> None:
        self.draft = draft
        self._claimed = path is not None
        self.autosaver = Autosaver(draft, target, saved=saved, save=self._write)
        self.emergency_folder = emergency_folder
        self.emergency_path: Path | None = None

    # -- opening ------------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | None, drafts_dir: Path,
             new_draft: Callable[[], Draft]) -> tuple[Workspace, str | None]:
        """The draft at ``path`` if it loads; else a new draft (named after ``path`` when it does not exist yet).
        The second value is a one-line warning when ``path`` exists but could not be read (it is never saved
        over: the new draft gets a fresh name beside the others)."""
        if path is not None and path.exists():
            try:
                draft = load_draft(path)
            except StorytermError as error:
                warning = f"{error} — started a new draft instead"
                draft = new_draft()
                return cls(draft, new_draft_path(draft.title, drafts_dir), path=None, saved=False), warning
            return cls(draft, path, path=path, saved=True), None
        draft = new_draft()
        if path is not None:
            draft.title = path.stem.replace("-", " ").replace("_", " ").strip() or draft.title
            return cls(draft, path, path=None, saved=False), None
        return cls(draft, new_draft_path(draft.title, drafts_dir), path=None, saved=False), None

    @classmethod
    def new(cls, draft: Draft, drafts_dir: Path) -> Workspace:
        return cls(draft, new_draft_path(draft.title, drafts_dir), path=None, saved=False)

    @classmethod
    def opened(cls, draft: Draft, path: Path) -> Workspace:
        """A draft just loaded from ``path``."""
        return cls(draft, path, path=path, saved=True)

    # -- state --------------------------------------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The draft's own file; None for a new draft before its first save."""
        return self.autosaver.path if self._claimed else None

    @property
    def target(self) -> Path:
        return self.autosaver.path

    @property
    def dirty(self) -> bool:
        return self.autosaver.dirty

    @property
    def last_error(self) -> DraftFileError | None:
        return self.autosaver.last_error

    def worth_saving(self) -> bool:
        """A new draft gets its file with its first words, not when the app merely opened."""
        text = self.draft.text
        return self._claimed or bool(text and not text.isspace()) or bool(self.draft.passages)

    @property
    def unsaved_work(self) -> bool:
        """Something the writer would lose if the process ended now."""
        return self.dirty and self.worth_saving()

    # -- saving -------------------------------------------------------------------------------------------------

    def maybe_save(self) -> bool:
        """Save if the autosave policy says it is due. Raises DraftFileError."""
        if not self.worth_saving():
            return False
        return self.autosaver.maybe_save()

    def save_now(self, *, force: bool = False) -> bool:
        """Save at once if anything is unsaved (``force``: even an empty new draft). True when a save happened.
        Raises DraftFileError (the draft stays dirty)."""
        if not (force or self.worth_saving()):
            return False
        return self.autosaver.save_now()

    def _write(self, draft: Draft, target: Path) -> Path:
        if self._claimed:
            save_draft(draft, target)
            return target
        path = claim_draft_file(draft, target)
        self._claimed = True
        return path

    def save_as(self, path: Path) -> Path:
        """Write the draft to a new file ``path`` (a folder: a file named after the title in it) and make it the
        draft's file. Refuses an existing file. Returns the path written. Raises DraftFileError."""
        path = Path(os.path.expanduser(path))
        if path.is_dir():
            path = path / f"{slugify(self.draft.title)}{DRAFT_SUFFIX}"
        elif path.suffix != DRAFT_SUFFIX:
            path = path.with_name(path.name + DRAFT_SUFFIX)
        revision = self.draft.revision
        written = write_new_draft_file(self.draft, path)
        self._claimed = True
        self.autosaver.path = written
        self.autosaver.mark_saved(revision)
        return written

    def emergency_copy(self) -> Path:
        """Write the draft to the emergency folder under a new name; returns the path. Raises DraftFileError."""
        folder = self.emergency_folder or emergency_dir()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        stem = f"{slugify(self.draft.title)}-{stamp}-{os.getpid()}"
        content = _encode(self.draft, folder)
        for counter in range(MAX_NAME_TRIES):
            path = folder / f"{stem}{f'-{counter}' if counter else ''}{DRAFT_SUFFIX}"
            try:
                write_atomic(path, content, exclusive=True)
            except NameTaken:
                continue
            self.emergency_path = path
            return path
        raise DraftFileError(folder, "could not find a free file name for the emergency copy")

    def rename(self, title: str) -> Path:
        """Give the draft a new title; its file follows it (``the-new-title.json``, or ``-2``… when that name is
        taken: never over another file), the old file and its backup go. Returns the draft's file, or for a new
        draft without one, where its first save will go. Raises DraftFileError (the old file is kept)."""
        self.draft.title = title
        old = self.path
        stem = slugify(title)
        if old is None:
            self.autosaver.path = new_draft_path(title, self.autosaver.path.parent)
            return self.autosaver.path
        if stem in (old.stem, re.sub(r"-\d+$", "", old.stem)):
            self.save_now()
            return old
        revision = self.draft.revision
        written = claim_draft_file(self.draft, old.parent / f"{stem}{DRAFT_SUFFIX}")
        self.autosaver.path = written
        self.autosaver.mark_saved(revision)
        for stale in (old, backup_path(old)):
            try:
                os.unlink(stale)
            except OSError:
                pass  # the draft lives on in its new file
        return written
