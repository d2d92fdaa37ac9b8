"""story.workspace: a new draft claims its file exclusively, save-as never replaces a file, emergency copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyterm.story import Draft, load_draft, save_draft
from storyterm.story.file_errors import DraftFileError
from storyterm.story.workspace import Workspace, claim_draft_file


def _typed(workspace: Workspace, text: str) -> Workspace:
    workspace.draft.set_text(text)
    return workspace


def test_two_new_drafts_opened_together_get_two_files(tmp_path: Path) -> None:
    first, _ = Workspace.open(None, tmp_path, Draft)
    second, _ = Workspace.open(None, tmp_path, Draft)
    assert first.target == second.target  # both propose untitled.json
    assert _typed(first, "A").save_now() and _typed(second, "B").save_now()
    assert first.path != second.path
    assert load_draft(first.path).text == "A" and load_draft(second.path).text == "B"
    assert _typed(first, "A again").save_now()  # later saves stay in the claimed file
    assert load_draft(first.path).text == "A again" and load_draft(second.path).text == "B"


def test_an_untouched_new_draft_has_no_file(tmp_path: Path) -> None:
    workspace, _ = Workspace.open(None, tmp_path, Draft)
    assert not workspace.save_now() and workspace.path is None and not list(tmp_path.iterdir())


def test_claim_never_replaces_an_existing_file(tmp_path: Path) -> None:
    taken = tmp_path / "story.json"
    taken.write_text("not a draft", encoding="utf-8")
    path = claim_draft_file(Draft("Story", text="mine"), taken)
    assert path == tmp_path / "story-2.json" and taken.read_text(encoding="utf-8") == "not a draft"


def test_an_unreadable_file_is_reported_and_left_alone(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    workspace, warning = Workspace.open(broken, tmp_path, Draft)
    assert warning and "started a new draft instead" in warning
    assert _typed(workspace, "words").save_now() and workspace.path != broken
    assert broken.read_text(encoding="utf-8") == "{"


def test_save_as_writes_a_new_file_and_refuses_an_existing_one(tmp_path: Path) -> None:
    source = tmp_path / "source.json"
    save_draft(Draft("Source", text="story"), source)
    workspace = Workspace.opened(load_draft(source), source)
    other = tmp_path / "other.json"
    other.write_text("keep", encoding="utf-8")
    with pytest.raises(DraftFileError, match="exists; choose another name"):
        workspace.save_as(other)
    folder = tmp_path / "folder"
    folder.mkdir()
    written = workspace.save_as(folder)
    assert written == folder / "source.json" and workspace.path == written and not workspace.dirty
    assert _typed(workspace, "story, more").save_now()
    assert load_draft(written).text == "story, more" and load_draft(source).text == "story"
    assert workspace.save_as(tmp_path / "plain") == tmp_path / "plain.json"


def test_emergency_copy_goes_to_the_state_folder_under_a_new_name(tmp_path: Path) -> None:
    workspace = Workspace(Draft("T", text="unsaved"), tmp_path / "t.json", path=None, saved=False,
                          emergency_folder=tmp_path / "emergency")
    first, second = workspace.emergency_copy(), workspace.emergency_copy()
    assert first != second and first.parent == tmp_path / "emergency"
    assert load_draft(first).text == load_draft(second).text == "unsaved"
