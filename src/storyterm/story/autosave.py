"""When to autosave. Plain Python: the TUI owns the timers and calls in.

Promise: a ``kill -9`` at any moment loses no accepted passage, regeneration or switch, and at most the last
2 seconds of typing. How the TUI keeps it::

    autosaver = Autosaver(draft, path)             # every draft has a file from the start (create_draft_file)
    self.set_interval(0.25, self._autosave_tick)   # _autosave_tick calls autosaver.maybe_save()
    # after the writer types:                       autosaver.note_edit()
    # after accept / regenerate / switch / dismiss / undo / redo / settings:  autosaver.save_now()
    # on quit, SIGTERM and SIGHUP:                  autosaver.save_now()  (then Session.close() on a clean quit)
    # "save as":                                    autosaver.path = new_path; autosaver.save_now()

``maybe_save`` saves once the oldest unsaved keystroke is ``typing_delay_s`` old (1.5 s by default, leaving room
for the tick and the write inside the 2 s promise): steady typing is saved every 1.5 s, it does not wait for a
pause. It notices changes by ``Draft.revision`` even without ``note_edit``. Save failures raise
:class:`~storyterm.story.file_errors.DraftFileError` (show its one line); the draft stays dirty and the next attempt
comes ``retry_delay_s`` later, so a full disk does not spin. A path that failed to load is never saved over:
the error says to pick another name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .draft import Draft
from .file_errors import DraftFileError
from .store import save_draft

TYPING_DELAY_S = 1.5
RETRY_DELAY_S = 5.0


class Autosaver:
    def __init__(
        self,
        draft: Draft,
        path: Path,
        *,
        typing_delay_s: float = TYPING_DELAY_S,
        retry_delay_s: float = RETRY_DELAY_S,
        clock: Callable[[], float] = time.monotonic,
        save: Callable[[Draft, Path], Path | None] = save_draft,
        saved: bool = True,
    ) -> None:
        """``saved=True``: the draft at ``path`` is already on disk as it is now (just loaded or created).
        ``save`` may return the path it actually wrote (a new draft's claimed file name): later saves go there."""
        self.draft = draft
        self._path = Path(path)
        self.typing_delay_s = typing_delay_s
        self.retry_delay_s = retry_delay_s
        self._clock = clock
        self._save = save
        self._saved_revision: int | None = draft.revision if saved else None
        self._dirty_since: float | None = None
        self._retry_at: float | None = None
        self.last_error: DraftFileError | None = None
        self.saves = 0

    @property
    def path(self) -> Path:
        return self._path

    @path.setter
    def path(self, value: Path) -> None:
        """Save-as: the next save goes to ``value``; it counts as unsaved until then."""
        self._path = Path(value)
        self._saved_revision = None
        self._retry_at = None

    def mark_saved(self, revision: int) -> None:
        """The draft as it was at ``revision`` is on disk at ``path`` (written by someone else: save-as)."""
        self._saved_revision = revision
        self._dirty_since = None
        self._retry_at = None
        self.last_error = None

    @property
    def dirty(self) -> bool:
        return self._saved_revision != self.draft.revision

    def note_edit(self) -> None:
        """The writer typed: start the clock if this is the first unsaved change."""
        if self._dirty_since is None and self.dirty:
            self._dirty_since = self._clock()

    def due_in(self) -> float | None:
        """Seconds until the next save is due (0: now); ``None`` when everything is saved."""
        if not self.dirty:
            self._dirty_since = None
            return None
        now = self._clock()
        if self._dirty_since is None:
            self._dirty_since = now  # changed without note_edit: noticed now
        due = self._dirty_since + self.typing_delay_s
        if self._retry_at is not None:
            due = max(due, self._retry_at)
        return max(0.0, due - now)

    def maybe_save(self) -> bool:
        """Save if due; True when a save happened. Raises DraftFileError when the save fails."""
        due = self.due_in()
        if due is None or due > 0:
            return False
        return self.save_now()

    def save_now(self) -> bool:
        """Save at once if anything is unsaved (after structural changes, on quit, on SIGTERM/SIGHUP)."""
        if not self.dirty:
            return False
        revision = self.draft.revision
        try:
            written = self._save(self.draft, self._path)
        except DraftFileError as error:
            self.last_error = error
            self._retry_at = self._clock() + self.retry_delay_s
            raise
        if written is not None:
            self._path = Path(written)
        self._saved_revision = revision
        self._dirty_since = None
        self._retry_at = None
        self.last_error = None
        self.saves += 1
        return True
