"""Never without the work: crash recovery at start, and quit / SIGTERM / SIGHUP that save first. A mixin of
``StorytermApp`` (the session marker and emergency copies are ``story/session.py`` and ``story/workspace.py``).

A quit saves first. When the save fails the draft goes to an emergency copy in the state folder, whatever happens
next; the writer is asked (save as, quit anyway, stay), and a quit without the draft saved in its own file exits 1
and says on stderr where the copy is. The session marker then points at the copy, so the next start offers it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App

from storyterm.engine.errors import StorytermError
from storyterm.story.session import find_crashed_sessions
from storyterm.story.workspace import Workspace, emergency_dir

if TYPE_CHECKING:
    from storyterm.tui.app import StorytermApp

    _Base = StorytermApp
else:
    _Base = object


class Quitting(_Base):
    hard_exit_s: float | None = None  # run_app sets it: the process must end after SIGTERM/SIGHUP
    exit_message: str | None = None   # run_app prints it on stderr (e.g. where the emergency copy is)
    _emergency: tuple[int, Path] | None = None  # (draft revision, copy) of the last emergency copy

    def _offer_recovery(self) -> None:
        """A previous run died without closing: offer its newest autosaved draft."""
        crashed = find_crashed_sessions()
        offer = next((c for c in crashed if c.draft_path is not None), None)
        if offer is None or _same_path(offer.draft_path, self.draft_path):  # already open (the last draft)
            for stale in crashed:
                stale.discard()
            return
        from storyterm.tui.screens.confirm import ConfirmScreen

        when = f" (autosaved {offer.last_saved:%Y-%m-%d %H:%M})" if offer.last_saved else ""
        question = (f"storyterm did not close cleanly. Reopen {offer.draft_path.name}{when}? "
                    "Either way the draft stays in your drafts folder (ctrl+o).")

        def answered(yes: bool | None) -> None:
            for stale in crashed:
                stale.discard()
            if not yes:
                return
            try:
                draft, path = offer.load_newest()
            except StorytermError as error:
                self.notify(str(error), title="Not recovered", severity="error")
                return
            if not self.save_now():
                return
            # Only the backup was readable, or the draft is an emergency copy: keep it under a new name.
            if path != offer.draft_path or _is_inside(path, emergency_dir()):
                self._switch_draft(Workspace.new(draft, self.drafts_dir))
                self.save_now(force=True)
            else:
                self._switch_draft(Workspace.opened(draft, path))
            self.notify(f"Recovered {(self.draft_path or path).name}", timeout=4)

        self.push_screen(ConfirmScreen(question, yes="Reopen", no="Not now"), answered)

    def _final_save(self) -> bool:
        """Stop a run and save; True when nothing is left unsaved."""
        self.controller.cancel()
        self.sync_editor()
        self.save_now()
        return not self.workspace.unsaved_work

    def _quit_saved(self) -> None:
        if self.session is not None:
            self._session_call(self.session.close)
        self.exit(0)

    async def action_quit(self) -> None:
        from storyterm.tui.screens.unsaved_quit import UnsavedQuitScreen

        if isinstance(self.screen, UnsavedQuitScreen):
            self.screen.dismiss("quit")  # ctrl+q on the question itself: quit anyway (the copy is written)
            return
        if self._final_save():
            self._quit_saved()
            return
        copy = self._emergency_copy()
        cause = self.workspace.last_error.cause if self.workspace.last_error else "the save failed"
        where = f"An emergency copy is in {copy}." if copy else "No emergency copy could be written either."

        def answered(choice: str | None) -> None:
            if choice == "save_as":
                self.action_save_as(then_quit=True)
            elif choice == "quit":
                self._quit_unsaved(copy)

        question = f"{self.workspace.target.name} is not saved: {cause}. {where}"
        self.push_screen(UnsavedQuitScreen(question), answered)

    def _emergency_copy(self) -> Path | None:
        """The draft in the state folder (written again only when it changed since the last copy)."""
        revision = self.draft.revision
        if self._emergency is not None and self._emergency[0] == revision:
            return self._emergency[1]
        try:
            copy = self.workspace.emergency_copy()
        except StorytermError as error:
            self.notify(f"emergency copy failed too: {error}", severity="error", timeout=10)
            return None
        self._emergency = (revision, copy)
        if self.session is not None:
            self._session_call(self.session.set_draft, copy)  # the next start offers the copy
        return copy

    def _quit_unsaved(self, copy: Path | None) -> None:
        cause = self.workspace.last_error or "the save failed"
        where = f"an emergency copy is in {copy}" if copy else "no emergency copy could be written"
        self.exit_message = f"storyterm: not saved: {cause}; {where}"
        self.exit(1, return_code=1)

    def _terminate(self, signum: int = signal.SIGTERM) -> None:
        """SIGTERM / SIGHUP: save (else an emergency copy), then leave; exit 1 when the draft's file is behind."""
        code = 0
        if self._final_save():
            if self.session is not None:
                self._session_call(self.session.close)
        else:
            self._quit_unsaved(self._emergency_copy())
            code = 1
        if self.hard_exit_s is not None:
            # Textual's shutdown writes to the terminal and can block for ever once the terminal is gone (tmux
            # kill-session while a passage streams): after the save, make sure the process really ends.
            if signum == signal.SIGHUP:
                print_exit_message(self.exit_message)
                os._exit(code)  # no terminal left to restore
            watchdog = threading.Timer(self.hard_exit_s, _hard_exit, args=(code, self.exit_message))
            watchdog.daemon = True
            watchdog.start()
        self.exit(code, return_code=code)


def _same_path(a: Path | None, b: Path | None) -> bool:
    return a is not None and b is not None and a.resolve() == b.resolve()


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))
    except OSError:
        return False


def print_exit_message(message: str | None) -> None:
    if message:
        try:
            print(message, file=sys.stderr, flush=True)
        except OSError:
            pass  # the terminal is gone


def _hard_exit(code: int, message: str | None) -> None:
    print_exit_message(message)
    os._exit(code)


def exit_code(app: App, returned: object) -> int:
    """The process's exit status: what the app exited with, and 1 after a crash (Textual sets return_code)."""
    if app.return_code not in (None, 0):
        return int(app.return_code)  # type: ignore[arg-type]
    return returned if isinstance(returned, int) else 0
