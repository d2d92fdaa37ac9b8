"""Draft files: one human-readable JSON file per draft (format and reading: ``draft_bytes``), written atomically
with the previous version kept (``atomic_write``), never over a file this process must not replace
(``overwrite_guard``); and the library of drafts in a folder (list, create, rename, duplicate, delete).

``save_draft`` raises :class:`DraftFileError` (``file_errors``) with the previous file intact on any failure;
``load_draft`` raises it for any file that is not a readable draft, and such a file is then never written over.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import platformdirs

from .atomic_write import NameTaken, backup_path, remove_quietly, write_atomic
from .draft import Draft
from .draft_bytes import encode_draft, parse_draft, read_limited
from .file_errors import DraftFileError, os_cause
from .overwrite_guard import check_overwrite, check_refusal, forget_refusal, record_stamp, remember_refusal

DRAFT_SUFFIX = ".json"


def default_drafts_dir() -> Path:
    return platformdirs.user_data_path("storyterm") / "drafts"


def load_draft(path: Path) -> Draft:
    """Read a draft. On failure raises DraftFileError and, if the file exists, remembers the path so that
    ``save_draft`` never writes over it."""
    path = Path(path)
    try:
        draft = parse_draft(read_limited(path), path)
    except DraftFileError as error:
        if os.path.lexists(path):
            remember_refusal(path, error.cause)
        raise
    forget_refusal(path)
    record_stamp(path)
    return draft


def save_draft(draft: Draft, path: Path, *, replace_changed: bool = False) -> None:
    """Write ``draft`` to ``path`` atomically, keeping the previous version as ``path.bak``.

    Raises DraftFileError (the previous file intact) on any failure, and refuses to write over: a file that
    could not be read as a draft, or a file another program changed since this process last read or wrote it
    (unless ``replace_changed=True``, after the writer confirmed).
    """
    path = Path(path)
    try:
        content = encode_draft(draft)
    except (ValueError, TypeError) as error:
        raise DraftFileError(path, f"not saved: the draft holds a value JSON cannot store ({error})") from None
    check_refusal(path)
    check_overwrite(path, replace_changed=replace_changed)
    write_atomic(path, content, keep_backup=True)
    forget_refusal(path)  # what is there now is ours
    record_stamp(path)


# ----- the library of drafts -----
@dataclass(frozen=True)
class DraftInfo:
    """One line of the open dialog / ``storyterm drafts``; ``error`` is set when the file could not be read."""

    path: Path
    title: str
    genre: str | None
    words: int
    modified: datetime
    error: str | None = None


def list_drafts(folder: Path | None = None) -> list[DraftInfo]:
    """Every ``*.json`` draft in ``folder`` (default: the drafts folder), newest first. Unreadable files are
    listed with ``error`` set, not hidden."""
    folder = Path(folder) if folder is not None else default_drafts_dir()
    try:
        candidates = [p for p in folder.iterdir() if p.suffix == DRAFT_SUFFIX and not p.name.startswith(".")]
    except FileNotFoundError:
        return []
    except OSError as error:
        raise DraftFileError(folder, f"cannot list drafts: {os_cause(error)}") from None
    infos: list[DraftInfo] = []
    for path in candidates:
        try:
            modified = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
        except OSError:
            continue  # removed while listing
        try:
            draft = parse_draft(read_limited(path), path)
        except DraftFileError as error:
            infos.append(DraftInfo(path, path.stem, None, 0, modified, error=error.cause))
            continue
        infos.append(DraftInfo(path, draft.title, draft.genre, draft.word_count, modified))
    infos.sort(key=lambda info: (info.modified, info.path.name), reverse=True)
    return infos


def slugify(title: str) -> str:
    slug = re.sub(r"[^\w-]+", "-", title.strip().lower(), flags=re.UNICODE).strip("-_")
    return slug[:60].strip("-_") or "untitled"


def new_draft_path(title: str, folder: Path | None = None) -> Path:
    """A free file name for a new draft titled ``title``: ``the-last-train.json``, ``the-last-train-2.json``…"""
    folder = Path(folder) if folder is not None else default_drafts_dir()
    return free_draft_path(folder, slugify(title))


def free_draft_path(folder: Path, stem: str) -> Path:
    """``folder/stem.json``, or ``stem-2.json``… — the first name that neither a draft nor its backup uses."""
    candidate = folder / f"{stem}{DRAFT_SUFFIX}"
    counter = 2
    while os.path.lexists(candidate) or os.path.lexists(backup_path(candidate)):
        candidate = folder / f"{stem}-{counter}{DRAFT_SUFFIX}"
        counter += 1
    return candidate


def create_draft_file(draft: Draft, folder: Path | None = None) -> Path:
    """Save a new draft under a fresh name in ``folder`` (never over an existing file, even if another
    storyterm picks the same name at the same moment); returns its path."""
    try:
        content = encode_draft(draft)
    except (ValueError, TypeError) as error:
        raise DraftFileError(folder or default_drafts_dir(), f"not saved: {error}") from None
    for _ in range(1000):
        path = new_draft_path(draft.title, folder)
        try:
            write_atomic(path, content, exclusive=True)
        except NameTaken:
            continue
        record_stamp(path)
        return path
    raise DraftFileError(folder or default_drafts_dir(), "could not find a free file name for the draft")


def rename_draft(path: Path, new_title: str) -> Path:
    """Set the draft's title and move it (and its backup) to a file named after the title; returns the new path."""
    path = Path(path)
    draft = load_draft(path)
    draft.title = new_title
    slug = slugify(new_title)
    keeps_name = slug in (path.stem, _stem_base(path))
    target = path if keeps_name else new_draft_path(new_title, path.parent)
    save_draft(draft, target)
    if target != path:
        remove_quietly(path)
        remove_quietly(backup_path(path))
    return target


def _stem_base(path: Path) -> str:
    return re.sub(r"-\d+$", "", path.stem)


def duplicate_draft(path: Path, new_title: str | None = None) -> Path:
    """Copy a draft (with its whole tree) to a new file titled ``new_title`` or "<title> (copy)"."""
    path = Path(path)
    draft = load_draft(path)
    draft.title = new_title or f"{draft.title} (copy)"
    return create_draft_file(draft, path.parent)


def delete_draft(path: Path) -> None:
    """Remove a draft file and its backup (the TUI asks for confirmation first)."""
    path = Path(path)
    try:
        os.unlink(path)
    except OSError as error:
        raise DraftFileError(path, f"could not delete: {os_cause(error)}") from None
    remove_quietly(backup_path(path))
    forget_refusal(path)

