"""Draft files: one human-readable JSON file per draft, written atomically with the previous version kept.

File format: ``Draft.to_dict()`` as UTF-8 JSON: one top-level field per line in a fixed order
(``format_version`` first), one passage per line. The same draft always gives the same bytes.

Writing (``save_draft``): the new content goes to a temp file in the same folder, is flushed and fsynced, the
current file is hard-linked (or copied) to ``NAME.json.bak``, the temp file replaces the draft with
``os.replace``, and the folder is fsynced. At every instant the draft path holds either the old or the new
complete file; a failed save removes its temp file and leaves the previous file as it was, and says so.

Reading (``load_draft``) refuses, with a one-line :class:`DraftFileError` naming the file and the cause: a missing
file, a file over ``MAX_DRAFT_BYTES`` (checked before reading), bytes that are not UTF-8, invalid JSON, a newer or
unknown ``format_version``, or content that is not a draft.

Never written over (``save_draft`` raises instead): a path whose file exists but could not be read in this
process (until it loads again), an existing file that is not a readable draft, and a draft that another program
changed since this process last read or wrote it (``replace_changed=True`` once the writer confirmed).
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import platformdirs

from storyterm.engine.errors import StorytermError

from .draft import Draft, DraftFormatError, NewerFormatError

MAX_DRAFT_BYTES = 50 * 1024 * 1024
DRAFT_SUFFIX = ".json"
BACKUP_SUFFIX = ".bak"


class DraftFileError(StorytermError):
    """A draft file could not be read or written. The message is one line naming the file and the cause."""

    def __init__(self, path: Path | str, cause: str) -> None:
        self.path = Path(path)
        self.cause = cause
        super().__init__(_one_line(f"{path}: {cause}"))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def default_drafts_dir() -> Path:
    return platformdirs.user_data_path("storyterm") / "drafts"


def backup_path(path: Path) -> Path:
    """``story.json`` → ``story.json.bak``: the version before the latest save."""
    return path.with_name(path.name + BACKUP_SUFFIX)


# ----- paths that could not be read: never written over -----
_refused: dict[str, str] = {}
_refused_lock = threading.Lock()


def _key(path: Path) -> str:
    return os.path.normcase(os.path.abspath(os.path.realpath(path)))


def refused_reason(path: Path) -> str | None:
    """Why loading ``path`` failed earlier in this process, if it did (then saving over it is refused)."""
    with _refused_lock:
        return _refused.get(_key(path))


def _remember_refusal(path: Path, cause: str) -> None:
    with _refused_lock:
        _refused[_key(path)] = cause


def _check_refusal(path: Path) -> None:
    """A file that could not be read is never written over (once it is gone, there is nothing to protect)."""
    reason = refused_reason(path)
    if reason is not None and os.path.lexists(path):
        raise DraftFileError(path, f"not saved over: the file could not be read ({reason}); save under another name")


def _forget_refusal(path: Path) -> None:
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


def _record_stamp(path: Path) -> None:
    stamp = _stamp(path)
    with _refused_lock:
        if stamp is None:
            _stamps.pop(_key(path), None)
        else:
            _stamps[_key(path)] = stamp


def _check_overwrite(path: Path, *, replace_changed: bool) -> None:
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
            _remember_refusal(path, error.cause)
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


def _os_cause(error: OSError) -> str:
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


# ----- reading -----
def read_limited(path: Path, limit: int = MAX_DRAFT_BYTES) -> bytes:
    """The file's bytes, refusing a missing file, a folder or a file larger than ``limit`` before reading it.
    Raises DraftFileError; does not remember refusals."""
    try:
        size = os.stat(path).st_size
        if os.path.isdir(path):
            raise DraftFileError(path, "it is a folder, not a file")
        if size > limit:
            raise DraftFileError(path, f"the file is {_size(size)}; files over {_size(limit)} are refused")
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)  # the file may have grown since stat
    except OSError as error:
        raise DraftFileError(path, f"cannot read it: {_os_cause(error)}") from None
    if len(data) > limit:
        raise DraftFileError(path, f"the file is over {_size(limit)}; such files are refused")
    return data


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n} bytes"


def decode_utf8(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DraftFileError(
            path, f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
        ) from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def parse_draft(data: bytes, path: Path | str = "<draft>") -> Draft:
    """Bytes of a draft file → Draft; every problem becomes DraftFileError(path, cause)."""
    path = Path(path)
    text = decode_utf8(path, data)
    try:
        raw = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise DraftFileError(path, f"not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})") from None
    except RecursionError:
        raise DraftFileError(path, "not a storyterm draft: JSON nested too deeply") from None
    except ValueError as error:  # NaN/Infinity, integers with too many digits
        raise DraftFileError(path, f"not valid JSON ({error})") from None
    try:
        return Draft.from_dict(raw)
    except NewerFormatError as error:
        raise DraftFileError(path, str(error)) from None
    except DraftFormatError as error:
        raise DraftFileError(path, f"not a storyterm draft: {error}") from None
    except RecursionError:
        raise DraftFileError(path, "not a storyterm draft: nested too deeply") from None


def load_draft(path: Path) -> Draft:
    """Read a draft. On failure raises DraftFileError and, if the file exists, remembers the path so that
    ``save_draft`` never writes over it."""
    path = Path(path)
    try:
        draft = parse_draft(read_limited(path), path)
    except DraftFileError as error:
        if os.path.lexists(path):
            _remember_refusal(path, error.cause)
        raise
    _forget_refusal(path)
    _record_stamp(path)
    return draft


# ----- writing -----
def encode_draft(draft: Draft) -> bytes:
    """The file content for ``draft`` (done on the caller's thread: it reads the draft).

    One top-level field per line and one passage per line: readable and diffable, and written by the C JSON
    encoder (``indent=`` would switch to the pure-Python one, several times slower on big drafts).
    """
    data = draft.to_dict()
    try:
        return _dump_document(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be UTF-8: \u-escape everything so the file stays valid and round-trips.
        return _dump_document(data, ensure_ascii=True).encode("ascii")


def _dump_document(data: dict, *, ensure_ascii: bool) -> str:
    def dump(value: object) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, allow_nan=False)

    lines = []
    for key, value in data.items():
        if key == "passages" and isinstance(value, list) and value:
            items = ",\n".join(f"    {dump(item)}" for item in value)
            lines.append(f"  {dump(key)}: [\n{items}\n  ]")
        else:
            lines.append(f"  {dump(key)}: {dump(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


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
    _check_refusal(path)
    _check_overwrite(path, replace_changed=replace_changed)
    write_atomic(path, content, keep_backup=True)
    _forget_refusal(path)  # what is there now is ours
    _record_stamp(path)


class NameTaken(Exception):
    """An exclusive write found the name already used (see create_draft_file and story.workspace)."""


def write_atomic(path: Path, content: bytes, *, keep_backup: bool = False, exclusive: bool = False) -> None:
    """Replace ``path`` by ``content`` so that the path always holds the old or the new complete file.
    Refuses a path that could not be read earlier in this process. A symlink is followed (the file it points
    to is replaced, the link stays). ``exclusive``: only create, never replace (raises NameTaken)."""
    path = Path(path)
    _check_refusal(path)
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
        raise DraftFileError(path, f"could not save: {_os_cause(error)}; {kept}") from None
    finally:
        if temp_name is not None:
            _remove_quietly(Path(temp_name))


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
        _remove_quietly(temp_backup)
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
        raise DraftFileError(folder, f"cannot list drafts: {_os_cause(error)}") from None
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
        _record_stamp(path)
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
        _remove_quietly(path)
        _remove_quietly(backup_path(path))
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
        raise DraftFileError(path, f"could not delete: {_os_cause(error)}") from None
    _remove_quietly(backup_path(path))
    _forget_refusal(path)


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
