"""What this process must never write over: a path whose file exists but could not be read here (until it loads
again), an existing file that is not a readable draft, a read-only file, and a draft that another program changed
since this process last read or wrote it (``replace_changed=True`` once the writer confirmed)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .draft_bytes import parse_draft, read_limited
from .file_errors import DraftFileError

# ----- paths that could not be read: never written over -----
_refused: dict[str, str] = {}
_refused_lock = threading.Lock()


def _key(path: Path) -> str:
    return os.path.normcase(os.path.abspath(os.path.realpath(path)))


def refused_reason(path: Path) -> str | None:
    """Why loading ``path`` failed earlier in this process, if it did (then saving over it is refused)."""
    with _refused_lock:
        return _refused.get(_key(path))


def remember_refusal(path: Path, cause: str) -> None:
    with _refused_lock:
        _refused[_key(path)] = cause


def check_refusal(path: Path) -> None:
    """A file that could not be read is never written over (once it is gone, there is nothing to protect)."""
    reason = refused_reason(path)
    if reason is not None and os.path.lexists(path):
        raise DraftFileError(path, f"not saved over: the file could not be read ({reason}); save under another name")


def forget_refusal(path: Path) -> None:
    with _refused_lock:
        _refused.pop(_key(path), None)


# ----- what each draft file looked like when this process last read or wrote it -----
_stamps: dict[str, tuple[int, int, int]] = {}


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def record_stamp(path: Path) -> None:
    stamp = _stamp(path)
    with _refused_lock:
        if stamp is None:
            _stamps.pop(_key(path), None)
        else:
            _stamps[_key(path)] = stamp


def check_overwrite(path: Path, *, replace_changed: bool) -> None:
    """Refuse to replace a file that is not a readable draft, or a draft another program changed since we read
    or wrote it (two storyterm windows on one draft would otherwise erase each other's work)."""
    current = _stamp(path)
    if current is None:
        return
    if _read_only(path):
        raise DraftFileError(path, "not saved: the file is read-only; save under another name or make it writable")
    with _refused_lock:
        known = _stamps.get(_key(path))
    if known is None:  # first save over a file this process never read: make sure it is a draft
        try:
            parse_draft(read_limited(path), path)
        except DraftFileError as error:
            remember_refusal(path, error.cause)
            raise DraftFileError(
                path, f"not saved over: the file there is not a readable draft ({error.cause}); save under another name"
            ) from None
    elif known != current and not replace_changed:
        raise DraftFileError(
            path, "not saved: another program changed the file since storyterm read it; save under another name"
        )


def _read_only(path: Path) -> bool:
    """No write permission bit at all (0444): the owner marked it read-only. Checked by mode, not access(),
    because replacing a file needs only the folder's permission, and root may write anything."""
    try:
        return os.stat(path).st_mode & 0o222 == 0
    except OSError:
        return False

