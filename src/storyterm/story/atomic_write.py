"""Replacing a file so that its path always holds the old or the new complete file.

The new content goes to a temp file in the same folder, is flushed and fsynced, the current file is hard-linked
(or copied) to ``NAME.json.bak``, the temp file replaces the file with ``os.replace``, and the folder is fsynced.
A failed write removes its temp file, leaves the previous file as it was, and says so.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import time
from pathlib import Path

from .file_errors import DraftFileError, os_cause
from .overwrite_guard import check_refusal

BACKUP_SUFFIX = ".bak"


def backup_path(path: Path) -> Path:
    """``story.json`` → ``story.json.bak``: the version before the latest save."""
    return path.with_name(path.name + BACKUP_SUFFIX)


class NameTaken(Exception):
    """An exclusive write found the name already used (see create_draft_file and story.workspace)."""


def write_atomic(path: Path, content: bytes, *, keep_backup: bool = False, exclusive: bool = False) -> None:
    """Replace ``path`` by ``content`` so that the path always holds the old or the new complete file.
    Refuses a path that could not be read earlier in this process. A symlink is followed (the file it points
    to is replaced, the link stays). ``exclusive``: only create, never replace (raises NameTaken)."""
    path = Path(path)
    check_refusal(path)
    target = Path(os.path.realpath(path)) if os.path.islink(path) else path
    folder = target.parent
    exists = os.path.exists(target)
    if exists and os.path.isdir(target):
        raise DraftFileError(path, "not saved: it is a folder")
    temp_name: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            _create_exclusively(temp_name, target)
        else:
            if exists:
                _copy_mode(target, temp_name)
                if keep_backup:
                    _make_backup(target)
            os.replace(temp_name, target)
            temp_name = None
        _fsync_folder(folder)
        _remove_stale_temps(target)
    except OSError as error:
        kept = "the previous version is unchanged" if exists else "nothing was written"
        raise DraftFileError(path, f"could not save: {os_cause(error)}; {kept}") from None
    finally:
        if temp_name is not None:
            remove_quietly(Path(temp_name))


def _create_exclusively(temp_name: str, target: Path) -> None:
    """Give the finished temp file the name ``target`` only if nobody has it (hard link fails if it exists)."""
    try:
        os.link(temp_name, target)
        return
    except FileExistsError:
        raise NameTaken from None
    except OSError:
        pass  # no hard links on this file system: reserve the name, then replace the empty reservation
    try:
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        raise NameTaken from None
    os.replace(temp_name, target)


STALE_TEMP_S = 600.0


def _remove_stale_temps(path: Path) -> None:
    """Temp files left by saves that were killed mid-write (old enough that no live save still owns them)."""
    cutoff = time.time() - STALE_TEMP_S
    try:
        leftovers = list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    except OSError:
        return
    for leftover in leftovers:
        try:
            if leftover.stat().st_mtime < cutoff:
                os.unlink(leftover)
        except OSError:
            pass


def _copy_mode(source: Path, target: str) -> None:
    try:
        os.chmod(target, os.stat(source).st_mode & 0o777)
    except OSError:
        pass


def _make_backup(path: Path) -> None:
    """Point ``path.bak`` at the current file without ever leaving ``path`` missing."""
    backup = backup_path(path)
    temp_backup = path.with_name(f".{path.name}.bak.tmp")
    try:
        os.unlink(temp_backup)
    except FileNotFoundError:
        pass
    try:
        os.link(path, temp_backup)
    except OSError:  # no hard links here (some file systems): copy instead
        shutil.copyfile(path, temp_backup)
    try:
        os.replace(temp_backup, backup)
    except OSError:
        remove_quietly(temp_backup)
        raise


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not supported for folders on every platform
    finally:
        os.close(fd)


def remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
