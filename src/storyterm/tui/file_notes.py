"""Where a file went, as a notification shows it: the file name whole on its own line, the folder under it, with
the home folder as ``~`` and its leading folders elided so that it fits the toast's width at 80 columns
("Saved d1.json" / "in ~/…/storyterm/drafts") instead of wrapping in the middle of a path."""

from __future__ import annotations

from pathlib import Path

# Textual's Toast: 60 cells wide, at most half the screen; padding 1 on each side and a border on the left.
TOAST_WIDTH, TOAST_SHARE, TOAST_FRAME = 60, 0.5, 3
ELLIPSIS = "…"


def toast_text_width(screen_width: int) -> int:
    """Cells a toast line holds on a screen ``screen_width`` cells wide."""
    return max(10, min(TOAST_WIDTH, int(screen_width * TOAST_SHARE)) - TOAST_FRAME)


def short_folder(folder: Path, width: int) -> str:
    """``folder`` in at most ``width`` cells: ``~`` for the home folder, then "…/" for the leading folders that do
    not fit (the last folder is always kept, elided at its start if it alone is too long)."""
    text = str(folder)
    try:
        home = Path.home()
        if folder == home or folder.is_relative_to(home):
            text = "~" if folder == home else "~/" + folder.relative_to(home).as_posix()
    except (RuntimeError, ValueError):  # no home folder to speak of
        pass
    if len(text) <= width:
        return text
    parts = text.split("/")
    kept = parts[-1]
    for part in reversed(parts[1:-1]):
        if len(ELLIPSIS) + 1 + len(part) + 1 + len(kept) > width:
            break
        kept = f"{part}/{kept}"
    shortened = f"{ELLIPSIS}/{kept}"
    if len(shortened) > width:
        shortened = ELLIPSIS + kept[-(width - 1):]
    return shortened


def file_note(action: str, path: Path, screen_width: int) -> str:
    """"Saved d1.json" and, under it, "in <folder>" fitted to a toast on a screen ``screen_width`` wide."""
    width = toast_text_width(screen_width)
    return f"{action} {path.name}\nin {short_folder(path.parent, width - len('in '))}"
