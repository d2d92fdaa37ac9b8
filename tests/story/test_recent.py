"""A launch reopens the last draft, except when another window has it open (issue 12: two windows, one file)."""

from __future__ import annotations

from pathlib import Path

from storyterm.story.recent import draft_to_open, remember_last_draft


def test_a_launch_reopens_the_last_draft(tmp_path: Path) -> None:
    draft, record = tmp_path / "story.json", tmp_path / "last-draft"
    draft.write_text("{}")
    remember_last_draft(draft, record)
    assert draft_to_open(None, record, tmp_path / "sessions") == (draft.resolve(), "")
    assert draft_to_open(None, tmp_path / "no-record", tmp_path / "sessions") == (None, "")


def test_a_second_window_starts_a_new_draft_instead_of_sharing_the_last_one(tmp_path: Path, other_window) -> None:
    draft, record, sessions = tmp_path / "story.json", tmp_path / "last-draft", tmp_path / "sessions"
    draft.write_text("{}")
    remember_last_draft(draft, record)
    with other_window(draft.resolve(), sessions) as pid:
        path, notice = draft_to_open(None, record, sessions)
        assert path is None
        assert notice == f"story.json is open in another storyterm window (process {pid}), so this is a new draft"
        named, warning = draft_to_open(draft, record, sessions)
        assert named == draft and "also open in another storyterm window" in warning
    assert draft_to_open(None, record, sessions) == (draft.resolve(), "")  # that window closed
