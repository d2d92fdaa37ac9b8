"""DraftFileError, the one-line error of every draft file read or write, and OSErrors put in words."""

from __future__ import annotations

import errno
from pathlib import Path

from storyterm.engine.errors import StorytermError


class DraftFileError(StorytermError):
    """A draft file could not be read or written. The message is one line naming the file and the cause."""

    def __init__(self, path: Path | str, cause: str) -> None:
        self.path = Path(path)
        self.cause = cause
        super().__init__(_one_line(f"{path}: {cause}"))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def os_cause(error: OSError) -> str:
    causes = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "the file system is read-only",
        errno.ENOENT: "no such file or folder",
        errno.EISDIR: "it is a folder, not a file",
        errno.ENOTDIR: "a part of the path is not a folder",
        errno.ENAMETOOLONG: "the file name is too long",
    }
    return causes.get(error.errno or -1) or error.strerror or str(error) or type(error).__name__
