"""Drafts, their branch history and their files. Plain Python: no Textual, no torch."""

from .draft import Draft, DraftError, DraftFormatError, Passage
from .file_errors import DraftFileError
from .store import (
    DraftInfo,
    default_drafts_dir,
    delete_draft,
    duplicate_draft,
    list_drafts,
    load_draft,
    new_draft_path,
    rename_draft,
    save_draft,
)

__all__ = [
    "Draft",
    "DraftError",
    "DraftFileError",
    "DraftFormatError",
    "DraftInfo",
    "Passage",
    "default_drafts_dir",
    "delete_draft",
    "duplicate_draft",
    "list_drafts",
    "load_draft",
    "new_draft_path",
    "rename_draft",
    "save_draft",
]
