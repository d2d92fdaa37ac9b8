"""Deleting a draft moves it (and its backup) to a ``trash`` folder inside the drafts folder, from which it can be
restored; nothing is ever moved over another file."""

from __future__ import annotations

import os
from pathlib import Path

from .atomic_write import backup_path
from .file_errors import DraftFileError
from .store import free_draft_path

TRASH_FOLDER = "trash"


def trash_dir(drafts_dir: Path) -> Path:
    return Path(drafts_dir) / TRASH_FOLDER


def move_to_trash(path: Path, drafts_dir: Path) -> Path:
    """Move the draft at ``path`` into the trash; returns where it went. Raises DraftFileError."""
    return _move(Path(path), trash_dir(drafts_dir), "could not move to the trash")


def restore_from_trash(path: Path, drafts_dir: Path) -> Path:
    """Move a trashed draft back into the drafts folder (under a free name); returns its new path."""
    return _move(Path(path), Path(drafts_dir), "could not restore")


def _move(path: Path, folder: Path, failure: str) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = free_draft_path(folder, path.stem)
        # A hard link fails if the name is taken, so two storyterms cannot move onto the same name.
        os.link(path, target)
        os.unlink(path)
    except OSError as error:
        raise DraftFileError(path, f"{failure}: {error.strerror or error}") from None
    backup = backup_path(path)
    if backup.exists():
        try:
            os.replace(backup, backup_path(target))
        except OSError:
            pass  # the draft itself moved; a stale backup left behind is harmless
    return target
