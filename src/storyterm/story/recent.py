"""Which draft was open last, so that a relaunch of ``storyterm`` reopens it (ctrl+n starts a new one)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def last_draft_record() -> Path:
    """The state file that names the draft open last (platformdirs state folder)."""
    return platformdirs.user_state_path("storyterm") / "last-draft"


def remember_last_draft(path: Path | None, record: Path) -> None:
    """Best effort: failing to remember is not worth bothering the writer about."""
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        temporary = record.with_name(f".{record.name}.{os.getpid()}")
        temporary.write_text(str(path.resolve()) if path is not None else "", encoding="utf-8")
        os.replace(temporary, record)
    except OSError:
        pass


def last_draft(record: Path) -> Path | None:
    """The draft open last, if it still exists (deleted or moved away: None, and a relaunch starts a new one)."""
    try:
        text = record.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text:
        return None
    path = Path(text)
    return path if path.is_file() else None
