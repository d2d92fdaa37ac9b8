"""Export to Markdown / text, import a .txt, and the library operations of the open dialog."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from storyterm.engine.settings import DEFAULT_SETTINGS
from storyterm.story.atomic_write import backup_path
from storyterm.story.draft import Draft
from storyterm.story.export import export_draft, import_text, import_text_file, to_markdown, to_plain_text
from storyterm.story.file_errors import DraftFileError
from storyterm.story.store import (
    create_draft_file,
    default_drafts_dir,
    delete_draft,
    duplicate_draft,
    list_drafts,
    load_draft,
    new_draft_path,
    rename_draft,
    save_draft,
)


def story_draft(title: str = "The Last Train", genre: str | None = "sci_fi", text: str = "A train.") -> Draft:
    draft = Draft(title, genre)
    draft.set_text(text)
    return draft


def test_markdown_has_title_genre_and_story_without_pending() -> None:
    draft = story_draft(text="  It left at dawn.\n\nNobody saw it.  ")
    draft.add_alternative(" PENDING", genre="sci_fi", settings=DEFAULT_SETTINGS, seed=1, model="m")
    assert to_markdown(draft) == "# The Last Train\n\n*Genre: Sci-Fi*\n\nIt left at dawn.\n\nNobody saw it.\n"
    assert to_plain_text(draft) == "The Last Train\n\nIt left at dawn.\n\nNobody saw it.\n"


def test_markdown_without_genre_or_story() -> None:
    assert to_markdown(Draft("Empty", None)) == "# Empty\n"
    assert to_plain_text(Draft("  ", None)) == "Untitled\n"


def test_export_draft_picks_format_from_suffix(tmp_path: Path) -> None:
    draft = story_draft()
    export_draft(draft, tmp_path / "a.md")
    export_draft(draft, tmp_path / "a.txt")
    export_draft(draft, tmp_path / "b.out", "txt")
    assert (tmp_path / "a.md").read_text("utf-8").startswith("# The Last Train")
    assert (tmp_path / "a.txt").read_text("utf-8").startswith("The Last Train\n\nA train.")
    assert (tmp_path / "b.out").read_text("utf-8") == (tmp_path / "a.txt").read_text("utf-8")
    with pytest.raises(DraftFileError, match="unknown export format"):
        export_draft(draft, tmp_path / "c.doc", "doc")


def test_import_text(tmp_path: Path) -> None:
    source = tmp_path / "night_train-story.txt"
    source.write_bytes("Line one.\r\nLine two, café.\r\n".encode("utf-8"))
    draft = import_text(source, genre="drama")
    assert (draft.title, draft.genre, draft.text) == ("Night train story", "drama", "Line one.\nLine two, café.\n")
    assert not draft.can_undo
    path = import_text_file(source, tmp_path / "drafts")
    assert path.name == "night-train-story.json"
    assert load_draft(path).text == draft.text


@pytest.mark.parametrize(
    "content, cause", [(b"\xff\xfe bad", "not UTF-8"), (b"a\x00b", "NUL bytes")]
)
def test_import_rejects_non_text(tmp_path: Path, content: bytes, cause: str) -> None:
    source = tmp_path / "x.txt"
    source.write_bytes(content)
    with pytest.raises(DraftFileError, match=cause):
        import_text(source)


def test_import_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DraftFileError, match="no such file"):
        import_text(tmp_path / "nope.txt")


def test_list_drafts_newest_first_with_unreadable_ones_shown(tmp_path: Path) -> None:
    older = create_draft_file(story_draft("Older", "horror", "one two three"), tmp_path)
    newer = create_draft_file(story_draft("Newer", None, "four"), tmp_path)
    past = time.time() - 100
    os.utime(older, (past, past))
    (tmp_path / "broken.json").write_text("{")
    os.utime(tmp_path / "broken.json", (past - 100, past - 100))
    (tmp_path / "notes.txt").write_text("not a draft")
    infos = list_drafts(tmp_path)
    assert [(i.title, i.genre, i.words, i.error is None) for i in infos] == [
        ("Newer", None, 1, True), ("Older", "horror", 3, True), ("broken", None, 0, False)
    ]
    assert infos[0].path == newer
    assert "not valid JSON" in infos[2].error


def test_list_drafts_default_folder_and_missing_folder(tmp_path: Path) -> None:
    assert list_drafts(tmp_path / "none") == []
    path = create_draft_file(story_draft("Default"))
    assert path.parent == default_drafts_dir()
    assert "Default" in [i.title for i in list_drafts()]


def test_new_draft_path_never_collides(tmp_path: Path) -> None:
    first = create_draft_file(story_draft("Same"), tmp_path)
    second = create_draft_file(story_draft("Same"), tmp_path)
    assert (first.name, second.name) == ("same.json", "same-2.json")
    assert new_draft_path("  ?? ", tmp_path).name == "untitled.json"
    assert new_draft_path("Ünïcode Title!", tmp_path).name == "ünïcode-title.json"


def test_rename_moves_file_and_backup(tmp_path: Path) -> None:
    path = create_draft_file(story_draft("Old Name"), tmp_path)
    save_draft(load_draft(path), path)  # now it has a backup
    new_path = rename_draft(path, "New Name")
    assert new_path.name == "new-name.json"
    assert not path.exists() and not backup_path(path).exists()
    assert load_draft(new_path).title == "New Name"
    same = rename_draft(new_path, "NEW name")  # same file name: renamed in place
    assert same == new_path and load_draft(same).title == "NEW name"


def test_duplicate_keeps_the_tree(tmp_path: Path) -> None:
    draft = story_draft("Orig")
    draft.add_alternative(" more", genre="sci_fi", settings=DEFAULT_SETTINGS, seed=1, model="m")
    path = create_draft_file(draft, tmp_path)
    copy = duplicate_draft(path)
    loaded = load_draft(copy)
    assert loaded.title == "Orig (copy)"
    assert [p.id for p in loaded.passages] == [p.id for p in draft.passages]
    assert load_draft(path).title == "Orig"


def test_delete_removes_file_and_backup(tmp_path: Path) -> None:
    path = create_draft_file(story_draft(), tmp_path)
    save_draft(load_draft(path), path)
    delete_draft(path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DraftFileError, match="could not delete: no such file"):
        delete_draft(path)


def test_library_ops_refuse_unreadable_drafts(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{oops")
    with pytest.raises(DraftFileError):
        rename_draft(path, "Other")
    with pytest.raises(DraftFileError):
        duplicate_draft(path)
    assert path.read_text() == "{oops"
