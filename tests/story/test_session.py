"""Session markers: a clean exit leaves nothing; a killed process leaves a crash with the draft to reopen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from storyterm.story.atomic_write import backup_path
from storyterm.story.draft import Draft
from storyterm.story.file_errors import DraftFileError
from storyterm.story.session import Session, find_crashed_sessions, sessions_dir
from storyterm.story.store import save_draft


def test_sessions_dir_is_under_user_state() -> None:
    assert str(sessions_dir()).startswith(os.environ["XDG_STATE_HOME"])


def test_clean_exit_leaves_no_marker(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    session = Session.start(tmp_path / "d.json", folder)
    assert find_crashed_sessions(folder) == []  # running, not crashed
    session.set_draft(tmp_path / "e.json")
    session.close()
    session.close()  # idempotent
    assert list(folder.iterdir()) == []


def test_context_manager_keeps_marker_on_exception(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    with pytest.raises(RuntimeError), Session.start(None, folder):
        raise RuntimeError("boom")
    # an exception is not a clean exit: the marker stays for the next start to find
    assert any(p.suffix == ".json" for p in folder.iterdir())


def test_killed_process_is_found_and_newest_autosave_offered(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    draft_path = tmp_path / "story.json"
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from storyterm.story.draft import Draft
        from storyterm.story.session import Session
        from storyterm.story.store import save_draft
        draft = Draft("Crashy")
        path = Path({str(draft_path)!r})
        session = Session.start(path, Path({str(folder)!r}))
        for n in range(3):
            draft.set_text("line " * (n + 1))
            save_draft(draft, path)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        assert find_crashed_sessions(folder) == []  # alive: not a crash
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    crashed = find_crashed_sessions(folder)
    assert len(crashed) == 1
    offer = crashed[0]
    assert offer.draft_path == draft_path.resolve()
    assert offer.last_saved is not None
    draft, source = offer.load_newest()
    assert (draft.title, draft.text, source) == ("Crashy", "line line line ", draft_path.resolve())
    offer.discard()
    assert find_crashed_sessions(folder) == []
    assert list(folder.iterdir()) == []


def test_recovery_falls_back_to_backup_when_the_file_is_damaged(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    draft_path = tmp_path / "story.json"
    draft = Draft("Two saves")
    draft.set_text("first")
    save_draft(draft, draft_path)
    draft.set_text("second")
    save_draft(draft, draft_path)
    folder.mkdir()
    (folder / "host-1-dead.json").write_text(
        f'{{"format_version": 1, "pid": 1, "host": null, "draft_path": "{draft_path}"}}'
    )
    draft_path.write_bytes(b"\x00garbage")
    (offer,) = find_crashed_sessions(folder)
    recovered, source = offer.load_newest()
    assert (recovered.text, source) == ("first", backup_path(draft_path))


def test_damaged_marker_is_still_a_crash_without_a_draft(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    folder.mkdir()
    (folder / "x.json").write_bytes(b"\xff not json")
    (offer,) = find_crashed_sessions(folder)
    assert offer.draft_path is None
    with pytest.raises(DraftFileError, match="no draft open"):
        offer.load_newest()


def test_markers_from_other_hosts_are_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    folder.mkdir()
    (folder / "y.json").write_text('{"host": "some-other-machine", "pid": 5, "draft_path": null}')
    assert find_crashed_sessions(folder) == []


def test_missing_folder_means_no_crash(tmp_path: Path) -> None:
    assert find_crashed_sessions(tmp_path / "none") == []



def test_start_in_an_unusable_folder_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DraftFileError, match="session"):
        Session.start(None, blocker / "sessions")


def test_start_fails_cleanly_when_the_marker_cannot_be_written(tmp_path: Path, monkeypatch) -> None:
    import storyterm.story.session as session_module

    def full(*args, **kwargs):
        raise DraftFileError(args[0], "could not save: the disk is full; nothing was written")

    monkeypatch.setattr(session_module, "write_atomic", full)
    folder = tmp_path / "sessions"
    with pytest.raises(DraftFileError, match="disk is full"):
        Session.start(None, folder)
    assert list(folder.iterdir()) == []  # no orphan lock left behind


def test_a_draft_open_in_another_running_window_is_found(tmp_path: Path, other_window) -> None:
    from storyterm.story.session import window_holding

    folder = tmp_path / "sessions"
    draft = tmp_path / "story.json"
    with other_window(draft, folder) as pid:
        assert window_holding(draft, folder) == pid
        assert window_holding(tmp_path / "other.json", folder) is None
        own = Session.start(tmp_path / "mine.json", folder)
        assert window_holding(tmp_path / "mine.json", folder) is None  # this process's own window does not count
        own.close()
    assert window_holding(draft, folder) is None  # killed: a crash to recover, not a window holding the draft
