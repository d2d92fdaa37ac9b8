"""Draft files: atomic saves with a backup, one-line errors for every bad input, refused paths never overwritten."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import pytest

from storyterm.engine.errors import StorytermError
from storyterm.engine.settings import DEFAULT_SETTINGS
from storyterm.story import store
from storyterm.story.draft import Draft
from storyterm.story.store import DraftFileError, backup_path, load_draft, save_draft


def sample_draft(text: str = "The train left.") -> Draft:
    draft = Draft("The Last Train", "action")
    draft.set_text(text)
    draft.add_alternative(" Nobody saw it.", genre="action", settings=DEFAULT_SETTINGS, seed=1, model="builtin")
    return draft


def assert_one_line_naming(error: DraftFileError, path: Path, cause: str) -> None:
    message = str(error)
    assert "\n" not in message
    assert str(path) in message
    assert cause in message
    assert isinstance(error, StorytermError)


def make_os_call_fail(monkeypatch: pytest.MonkeyPatch, name: str, code: int, message: str) -> None:
    """``store.os.<name>`` raises ``OSError(code, message)`` until the monkeypatch is undone."""

    def fail(*args, **kwargs):
        raise OSError(code, message)

    monkeypatch.setattr(store.os, name, fail)


def test_default_drafts_dir_is_under_user_data(tmp_path_factory) -> None:
    assert store.default_drafts_dir().parts[-2:] == ("storyterm", "drafts")
    assert str(store.default_drafts_dir()).startswith(os.environ["XDG_DATA_HOME"])


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


def test_file_is_human_readable_json_with_stable_key_order(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    draft = sample_draft("Café ☕")
    save_draft(draft, path)
    content = path.read_text("utf-8")
    assert content.startswith('{\n  "format_version": 1,')
    assert "Café ☕" in content  # not \u-escaped
    save_draft(draft, path)
    assert path.read_text("utf-8") == content


def test_lone_surrogates_still_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    draft = sample_draft("bad \ud800 char")
    save_draft(draft, path)
    assert load_draft(path).text == "bad \ud800 char"


@pytest.mark.parametrize(
    "content, cause",
    [
        (b"{not json", "not valid JSON (line 1"),
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "not a storyterm draft"),
        (b'{"format_version": 7}', "newer storyterm"),
        (b'{"format_version": "one"}', "format_version"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"format_version": NaN}', "not valid JSON"),
        (b"1" * 5000, "not valid JSON"),
    ],
)
def test_bad_files_give_one_line_errors_and_are_never_overwritten(tmp_path: Path, content: bytes, cause: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(DraftFileError) as info:
        load_draft(path)
    assert_one_line_naming(info.value, path, cause)
    with pytest.raises(DraftFileError, match="another name"):
        save_draft(sample_draft(), path)
    assert path.read_bytes() == content
    other = tmp_path / "other.json"
    save_draft(sample_draft(), other)  # another name works
    assert load_draft(other).text == "The train left."


def test_refusal_is_lifted_once_the_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("garbage")
    with pytest.raises(DraftFileError):
        load_draft(path)
    save_draft(sample_draft(), tmp_path / "good.json")
    os.replace(tmp_path / "good.json", path)  # the writer fixed it by hand
    load_draft(path)
    save_draft(sample_draft("Fixed."), path)
    assert load_draft(path).text == "Fixed."


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(DraftFileError) as info:
        load_draft(path)
    assert_one_line_naming(info.value, path, "no such file")
    save_draft(sample_draft(), path)  # nothing was there to protect


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(DraftFileError, match="folder"):
        load_draft(tmp_path)


def test_too_large_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.json"
    with open(path, "wb") as handle:  # sparse 200 MB file: cheap to create
        handle.truncate(200 * 1024 * 1024)
    real_open = open

    def no_open(*args, **kwargs):
        if args and str(args[0]) == str(path):
            raise AssertionError("the big file was opened")
        return real_open(*args, **kwargs)

    monkeypatch.setattr("builtins.open", no_open)
    with pytest.raises(DraftFileError) as info:
        load_draft(path)
    assert_one_line_naming(info.value, path, "200.0 MB")
    monkeypatch.undo()
    with pytest.raises(DraftFileError, match="another name"):
        save_draft(sample_draft(), path)
    assert path.stat().st_size == 200 * 1024 * 1024


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


def test_json_written_is_standard(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    save_draft(sample_draft(), path)
    json.loads(path.read_text("utf-8"), parse_constant=lambda c: pytest.fail(c))


def test_permission_errors_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same cases as above for runs as root, where chmod does not stop anything."""
    path = tmp_path / "s.json"
    save_draft(sample_draft("Old."), path)
    before = path.read_bytes()

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(store.tempfile, "mkstemp", denied)
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
    old = time.time() - store.STALE_TEMP_S - 5
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    save_draft(sample_draft(), path)
    assert not stale.exists()
    assert fresh.exists()  # could belong to a save still running
    assert other.exists()  # another draft's business


def test_save_refuses_to_replace_a_file_that_is_not_a_draft(tmp_path: Path) -> None:
    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "precious notes"}')
    with pytest.raises(DraftFileError, match="not a readable draft .*another name"):
        save_draft(sample_draft(), notes)
    with pytest.raises(DraftFileError, match="another name"):
        save_draft(sample_draft(), notes)  # remembered
    assert notes.read_text() == '{"my": "precious notes"}'


def test_first_save_over_an_unknown_but_valid_draft_is_allowed_with_backup(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(store.encode_draft(sample_draft("Theirs.")))
    save_draft(sample_draft("Mine."), path)
    assert load_draft(backup_path(path)).text == "Theirs."


def test_save_refuses_when_another_program_changed_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    mine = sample_draft("Mine.")
    save_draft(mine, path)
    theirs = store.encode_draft(sample_draft("Theirs, written by a second window."))
    path.write_bytes(theirs)  # another storyterm (or editor) wrote it
    with pytest.raises(DraftFileError, match="another program changed the file"):
        save_draft(mine, path)
    assert path.read_bytes() == theirs
    save_draft(mine, path, replace_changed=True)  # the writer confirmed
    assert load_draft(path).text == "Mine."
    assert load_draft(backup_path(path)).text == "Theirs, written by a second window."
    save_draft(mine, path)  # loading/saving it again makes it ours again


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


def test_create_draft_file_never_takes_a_name_that_appeared_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = tmp_path / "race.json"
    taken.write_text("another storyterm's brand-new draft")
    names = iter([taken, tmp_path / "race-2.json"])
    monkeypatch.setattr(store, "new_draft_path", lambda title, folder=None: next(names))
    path = store.create_draft_file(sample_draft("Mine."), tmp_path)
    assert path.name == "race-2.json"
    assert taken.read_text() == "another storyterm's brand-new draft"
    assert load_draft(path).text == "Mine."
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race-2.json", "race.json"]


def test_create_draft_file_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_os_call_fail(monkeypatch, "link", errno.EPERM, "no links")
    first = store.create_draft_file(sample_draft("A."), tmp_path)
    second = store.create_draft_file(sample_draft("B."), tmp_path)
    assert first != second
    assert (load_draft(first).text, load_draft(second).text) == ("A.", "B.")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_read_only_draft_is_not_replaced_without_a_word(tmp_path: Path) -> None:
    path = tmp_path / "kept.json"
    save_draft(Draft("Kept", text="as it was"), path)
    draft = load_draft(path)
    os.chmod(path, 0o444)
    draft.set_text("changed")
    with pytest.raises(DraftFileError, match="read-only; save under another name"):
        save_draft(draft, path)
    assert load_draft(path).text == "as it was"
