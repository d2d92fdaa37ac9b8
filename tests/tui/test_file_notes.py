"""Where a file went, fitted to a toast: the name whole, the folder shortened from the left."""

from __future__ import annotations

from pathlib import Path

from storyterm.tui.file_notes import file_note, short_folder, toast_text_width


def test_the_folder_keeps_its_last_parts_and_the_home_folder_is_a_tilde(monkeypatch) -> None:
    monkeypatch.setenv("HOME", "/home/anna")
    assert short_folder(Path("/home/anna"), 20) == "~"
    assert short_folder(Path("/home/anna/.local/share/storyterm/drafts"), 40) == "~/.local/share/storyterm/drafts"
    assert short_folder(Path("/home/anna/.local/share/storyterm/drafts"), 20) == "…/storyterm/drafts"
    assert short_folder(Path("/srv/stories/drafts"), 40) == "/srv/stories/drafts"
    assert short_folder(Path("/srv/a-folder-name-far-too-long-to-fit"), 12) == "…long-to-fit"  # 12 cells


def test_a_note_is_two_lines_that_fit_the_toast(monkeypatch) -> None:
    monkeypatch.setenv("HOME", "/home/anna")
    assert (toast_text_width(60), toast_text_width(80), toast_text_width(120)) == (27, 37, 57)
    note = file_note("Saved", Path("/home/anna/.local/share/storyterm/drafts/night-shift.json"), 80)
    assert note == "Saved night-shift.json\nin ~/.local/share/storyterm/drafts"
    note = file_note("Saved", Path("/home/anna/.local/share/storyterm/drafts/night-shift.json"), 60)
    assert note == "Saved night-shift.json\nin …/share/storyterm/drafts"  # 24 cells: as many as fit
