"""What is never written over: unreadable files, files that are not drafts, read-only files, and drafts another
program changed since storyterm read them (unless the writer confirms)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storyterm.story import draft_bytes
from storyterm.story.atomic_write import backup_path
from storyterm.story.draft import Draft
from storyterm.story.file_errors import DraftFileError
from storyterm.story.store import load_draft, save_draft
from tests.story.draft_files import sample_draft


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
    path.write_bytes(draft_bytes.encode_draft(sample_draft("Theirs.")))
    save_draft(sample_draft("Mine."), path)
    assert load_draft(backup_path(path)).text == "Theirs."


def test_save_refuses_when_another_program_changed_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    mine = sample_draft("Mine.")
    save_draft(mine, path)
    theirs = draft_bytes.encode_draft(sample_draft("Theirs, written by a second window."))
    path.write_bytes(theirs)  # another storyterm (or editor) wrote it
    with pytest.raises(DraftFileError, match="another program changed the file"):
        save_draft(mine, path)
    assert path.read_bytes() == theirs
    save_draft(mine, path, replace_changed=True)  # the writer confirmed
    assert load_draft(path).text == "Mine."
    assert load_draft(backup_path(path)).text == "Theirs, written by a second window."
    save_draft(mine, path)  # loading/saving it again makes it ours again


def test_a_read_only_draft_is_not_replaced_without_a_word(tmp_path: Path) -> None:
    path = tmp_path / "kept.json"
    save_draft(Draft("Kept", text="as it was"), path)
    draft = load_draft(path)
    os.chmod(path, 0o444)
    draft.set_text("changed")
    with pytest.raises(DraftFileError, match="read-only; save under another name"):
        save_draft(draft, path)
    assert load_draft(path).text == "as it was"
