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


def draft_to_open(requested: Path | None, record: Path, sessions: Path | None = None) -> tuple[Path | None, str]:
    """Which draft a launch opens, and a notice for the writer ("" if none).

    No draft named: the one open last — unless another storyterm window has it open, then a new draft (two
    windows editing one file would refuse each other's saves). A named draft open in another window still
    opens, with a warning."""
    from storyterm.story.session import window_holding

    if requested is None:
        last = last_draft(record)
        if last is None:
            return None, ""
        pid = window_holding(last, sessions)
        if pid is None:
            return last, ""
        return None, f"{last.name} is open in another storyterm window (process {pid}), so this is a new draft"
    pid = window_holding(requested, sessions)
    if pid is None:
        return requested, ""
    return requested, (f"{requested.name} is also open in another storyterm window (process {pid}): whichever "
                       "saves second is refused (save as keeps a copy)")
