"""Atomic saves: the path always holds the old or the new file, a backup of the old, no temp files left."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from storyterm.story import atomic_write
from storyterm.story.atomic_write import backup_path
from storyterm.story.file_errors import DraftFileError
from storyterm.story.store import load_draft, save_draft
from tests.story.draft_files import (
    assert_one_line_naming,
    make_os_call_fail,
    sample_draft,
)


def test_save_and_load_round_trip_and_backup(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "story.json"
    first = sample_draft("One.")
    save_draft(first, path)
    assert not backup_path(path).exists()
    second = sample_draft("Two.")
    save_draft(second, path)
    assert load_draft(path).to_dict() == second.to_dict()
    assert load_draft(backup_path(path)).to_dict() == first.to_dict()
    assert sorted(p.name for p in path.parent.iterdir()) == ["story.json", "story.json.bak"]  # no temp files


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions")
def test_unreadable_file_and_read_only_folder(tmp_path: Path) -> None:
    path = tmp_path / "locked.json"
    save_draft(sample_draft("Old."), path)
    path.chmod(0)
    try:
        with pytest.raises(DraftFileError) as info:
            load_draft(path)
        assert_one_line_naming(info.value, path, "permission denied")
    finally:
        path.chmod(0o600)
    folder = tmp_path / "ro"
    folder.mkdir()
    target = folder / "s.json"
    save_draft(sample_draft("Old."), target)
    folder.chmod(0o500)
    try:
        with pytest.raises(DraftFileError) as info:
            save_draft(sample_draft("New."), target)
        assert_one_line_naming(info.value, target, "permission denied")
        assert "previous version is unchanged" in str(info.value)
    finally:
        folder.chmod(0o700)
    assert load_draft(target).text == "Old."


def test_disk_full_leaves_previous_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.json"
    save_draft(sample_draft("Old."), path)
    save_draft(sample_draft("Older backup."), tmp_path / "unused.json")
    before = path.read_bytes()
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[:10])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(DraftFileError) as info:
        save_draft(sample_draft("New."), path)
    assert_one_line_naming(info.value, path, "the disk is full")
    assert "previous version is unchanged" in str(info.value)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "unused.json"]


def test_failed_replace_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.json"
    save_draft(sample_draft("Old."), path)

    make_os_call_fail(monkeypatch, "replace", errno.EIO, "I/O error")
    with pytest.raises(DraftFileError, match="I/O error"):
        save_draft(sample_draft("New."), path)
    monkeypatch.undo()
    assert load_draft(path).text == "Old."
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_backup_falls_back_to_copy_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.json"
    save_draft(sample_draft("One."), path)

    make_os_call_fail(monkeypatch, "link", errno.EPERM, "no links")
    save_draft(sample_draft("Two."), path)
    assert load_draft(backup_path(path)).text == "One."
    assert load_draft(path).text == "Two."


def test_saved_file_keeps_permissions(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    save_draft(sample_draft(), path)
    path.chmod(0o640)
    save_draft(sample_draft(), path)
    assert path.stat().st_mode & 0o777 == 0o640


def test_permission_errors_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same cases as above for runs as root, where chmod does not stop anything."""
    path = tmp_path / "s.json"
    save_draft(sample_draft("Old."), path)
    before = path.read_bytes()

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(atomic_write.tempfile, "mkstemp", denied)
    with pytest.raises(DraftFileError) as info:
        save_draft(sample_draft("New."), path)
    assert_one_line_naming(info.value, path, "could not save: permission denied; the previous version is unchanged")
    monkeypatch.undo()
    assert path.read_bytes() == before

    real_open = open
    monkeypatch.setattr(
        "builtins.open", lambda f, *a, **k: denied() if str(f) == str(path) else real_open(f, *a, **k)
    )
    with pytest.raises(DraftFileError) as info:
        load_draft(path)
    assert_one_line_naming(info.value, path, "cannot read it: permission denied")
    monkeypatch.undo()
    with pytest.raises(DraftFileError, match="another name"):
        save_draft(sample_draft("New."), path)  # unread file: never written over
    assert path.read_bytes() == before


def test_temp_files_left_by_killed_saves_are_cleaned_when_stale(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    stale = tmp_path / ".s.json.abc123.tmp"
    fresh = tmp_path / ".s.json.def456.tmp"
    other = tmp_path / ".t.json.abc123.tmp"
    for leftover in (stale, fresh, other):
        leftover.write_text("half a draft")
    old = time.time() - atomic_write.STALE_TEMP_S - 5
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    save_draft(sample_draft(), path)
    assert not stale.exists()
    assert fresh.exists()  # could belong to a save still running
    assert other.exists()  # another draft's business


def test_symlinked_draft_is_written_through_the_link(tmp_path: Path) -> None:
    real = tmp_path / "synced" / "real.json"
    save_draft(sample_draft("One."), real)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    load_draft(link)
    save_draft(sample_draft("Two."), link)
    assert link.is_symlink()
    assert load_draft(real).text == "Two."
    assert load_draft(backup_path(real)).text == "One."
