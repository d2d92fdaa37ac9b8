"""Session markers: notice that storyterm did not exit cleanly, and offer the newest autosaved state.

While the app runs it keeps a marker in ``platformdirs.user_state_path("storyterm") / "sessions"``: a small JSON
file naming the open draft, plus a lock file the process holds locked (``flock``). A clean exit removes both.
A marker whose lock nobody holds belongs to a process that died (``kill -9``, power loss, crash): a crash.

How the TUI uses it::

    crashed = find_crashed_sessions()              # at start, before opening anything
    if crashed:                                    # newest first
        offer = crashed[0]                         # "storyterm did not close cleanly; reopen <title>?"
        draft, path = offer.load_newest()          # the draft file (autosaved in place), else its .bak
        ...                                        # if path is a backup, save the draft under a new name
        for stale in crashed: stale.discard()      # once offered (accepted or declined)
    session = Session.start(draft_path)            # after the draft is open
    session.set_draft(other_path)                  # when the writer opens another draft
    session.close()                                # on a clean quit, after the final autosave

Autosave writes the draft file itself (see ``autosave.py``), so "the newest autosaved state" is that file; its
``.bak`` is the save before it, used when the file itself cannot be read.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import platformdirs

from .atomic_write import backup_path, write_atomic
from .draft import Draft
from .file_errors import DraftFileError
from .store import load_draft

try:
    import fcntl
except ImportError:  # Windows: no flock; fall back to asking whether the process still runs
    fcntl = None  # type: ignore[assignment]

MARKER_SUFFIX = ".json"
LOCK_SUFFIX = ".lock"


def sessions_dir() -> Path:
    return platformdirs.user_state_path("storyterm") / "sessions"


class Session:
    """The marker of the running app. Create with :meth:`start`; :meth:`close` on a clean exit."""

    def __init__(self, marker: Path, lock_handle: int | None, draft_path: Path | None) -> None:
        self.marker = marker
        self._lock_handle = lock_handle
        self.draft_path = draft_path
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.closed = False

    @classmethod
    def start(cls, draft_path: Path | None = None, folder: Path | None = None) -> Session:
        folder = Path(folder) if folder is not None else sessions_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DraftFileError(folder, f"cannot create the session folder: {error.strerror or error}") from None
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        marker = folder / f"{name}{MARKER_SUFFIX}"
        lock_path = marker.with_suffix(LOCK_SUFFIX)
        try:
            lock_handle = _take_lock(lock_path)  # lock first: never a marker without its lock
        except OSError as error:
            raise DraftFileError(lock_path, f"cannot create the session lock: {error.strerror or error}") from None
        session = cls(marker, lock_handle, Path(draft_path) if draft_path else None)
        try:
            session._write()
        except DraftFileError:
            session.close()
            raise
        return session

    def set_draft(self, draft_path: Path | None) -> None:
        self.draft_path = Path(draft_path) if draft_path else None
        self._write()

    def _write(self) -> None:
        data = {
            "format_version": 1,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": self.started_at,
            "draft_path": str(self.draft_path.resolve()) if self.draft_path else None,
        }
        write_atomic(self.marker, (json.dumps(data, indent=2) + "\n").encode("utf-8"))

    def close(self) -> None:
        """Clean exit: remove the marker, then release and remove the lock."""
        if self.closed:
            return
        self.closed = True
        _unlink(self.marker)
        _unlink(self.marker.with_suffix(LOCK_SUFFIX))
        if self._lock_handle is not None:
            os.close(self._lock_handle)
            self._lock_handle = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:  # an exception is not a clean exit: leave the marker for recovery
            self.close()


def _take_lock(lock_path: Path) -> int | None:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _is_held(lock_path: Path, pid: int | None) -> bool:
    """Whether a live process still holds this session's lock."""
    if fcntl is None:
        return pid is not None and _pid_alive(pid)
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except OSError:
        return False  # no lock file: its owner is gone (or never finished starting)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases the probe lock
    return False


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C there; assume alive, the marker stays
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@dataclass(frozen=True)
class CrashedSession:
    """A session that ended without closing: what it had open and when the draft was last autosaved."""

    marker: Path
    draft_path: Path | None
    started_at: str | None
    last_saved: datetime | None  # the draft file's modification time

    def load_newest(self) -> tuple[Draft, Path]:
        """The newest readable autosaved state: the draft file, else its backup. Raises DraftFileError."""
        if self.draft_path is None:
            raise DraftFileError(self.marker, "the crashed session had no draft open")
        try:
            return load_draft(self.draft_path), self.draft_path
        except DraftFileError as error:
            backup = backup_path(self.draft_path)
            if not backup.exists():
                raise
            try:
                return load_draft(backup), backup
            except DraftFileError:
                raise error from None

    def discard(self) -> None:
        """Forget this crash (after the writer was offered the recovery)."""
        _unlink(self.marker)
        _unlink(self.marker.with_suffix(LOCK_SUFFIX))


@dataclass(frozen=True)
class _MarkerInfo:
    marker: Path
    pid: int | None
    live: bool  # a running process still holds its lock
    draft_path: Path | None
    started_at: str | None


def _this_host_markers(folder: Path | None) -> list[_MarkerInfo]:
    """Every session marker written on this host (other hosts' processes cannot be checked from here)."""
    folder = Path(folder) if folder is not None else sessions_dir()
    try:
        markers = [p for p in folder.iterdir() if p.suffix == MARKER_SUFFIX and not p.name.startswith(".")]
    except OSError:
        return []
    host = socket.gethostname()
    infos = []
    for marker in markers:
        data = _read_marker(marker)
        if data.get("host") not in (None, host):
            continue
        pid = data.get("pid") if isinstance(data.get("pid"), int) else None
        raw_path = data.get("draft_path")
        draft_path = Path(raw_path) if isinstance(raw_path, str) and raw_path else None
        started = data.get("started_at") if isinstance(data.get("started_at"), str) else None
        infos.append(_MarkerInfo(marker, pid, _is_held(marker.with_suffix(LOCK_SUFFIX), pid), draft_path, started))
    return infos


def find_crashed_sessions(folder: Path | None = None) -> list[CrashedSession]:
    """Markers left by processes that are gone, newest autosave first. Markers from other hosts are skipped
    (their process may still be running there)."""
    crashed = [CrashedSession(info.marker, info.draft_path, info.started_at, _mtime(info.draft_path))
               for info in _this_host_markers(folder) if not info.live]
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    crashed.sort(key=lambda c: c.last_saved or epoch, reverse=True)
    return crashed


def window_holding(draft_path: Path, folder: Path | None = None) -> int | None:
    """The process id of another running storyterm that has ``draft_path`` open, else None."""
    wanted = Path(draft_path).resolve()
    for info in _this_host_markers(folder):
        if info.live and info.pid != os.getpid() and info.draft_path is not None and info.draft_path == wanted:
            return info.pid
    return None


def _read_marker(marker: Path) -> dict:
    try:
        data = json.loads(marker.read_bytes()[:65536].decode("utf-8"))
    except (OSError, ValueError):
        return {}  # a damaged marker still means a crash; there is just no draft to offer
    return data if isinstance(data, dict) else {}


def _mtime(path: Path | None) -> datetime | None:
    if path is None:
        return None
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    except OSError:
        return None
