"""Autosave policy: structural changes at once, typing within the delay, retries without spinning."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from storyterm.engine.settings import DEFAULT_SETTINGS
from storyterm.story.autosave import Autosaver
from storyterm.story.draft import Draft
from storyterm.story.file_errors import DraftFileError
from storyterm.story.store import load_draft, save_draft


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup(tmp_path: Path):
    draft = Draft("Auto")
    path = tmp_path / "auto.json"
    save_draft(draft, path)
    clock = FakeClock()
    return draft, path, clock, Autosaver(draft, path, clock=clock, typing_delay_s=1.5)


def test_nothing_to_save_when_clean(setup) -> None:
    draft, path, clock, autosaver = setup
    assert not autosaver.dirty and autosaver.due_in() is None
    assert not autosaver.maybe_save() and not autosaver.save_now()


def test_typing_is_saved_within_the_delay_even_while_typing_goes_on(setup) -> None:
    draft, path, clock, autosaver = setup
    for step in range(6):  # a keystroke every 0.5 s, without pause
        draft.set_text("x" * (step + 1))
        autosaver.note_edit()
        saved = autosaver.maybe_save()
        assert saved == (step == 3), step  # first keystroke at t=0 → due at 1.5 s
        clock.now += 0.5
    assert load_draft(path).text == "xxxx"


def test_changes_without_note_edit_are_noticed_by_revision(setup) -> None:
    draft, path, clock, autosaver = setup
    draft.set_text("typed")
    assert autosaver.due_in() == pytest.approx(1.5)
    clock.now += 1.5
    assert autosaver.maybe_save()
    assert load_draft(path).text == "typed"


def test_structural_change_saved_at_once_with_save_now(setup) -> None:
    draft, path, clock, autosaver = setup
    draft.add_alternative("Boo.", genre=None, settings=DEFAULT_SETTINGS, seed=None, model="m")
    draft.accept()
    assert autosaver.save_now()
    assert load_draft(path).text == "Boo."
    assert not autosaver.dirty and autosaver.saves == 1


def test_failed_save_keeps_dirty_reports_and_backs_off(setup, monkeypatch) -> None:
    draft, path, clock, _ = setup
    failures = []

    def full_disk(d, p):
        failures.append(p)
        raise DraftFileError(p, "could not save: the disk is full; the previous version is unchanged")

    autosaver = Autosaver(draft, path, clock=clock, save=full_disk, retry_delay_s=5)
    draft.set_text("precious")
    autosaver.note_edit()
    clock.now += 2
    with pytest.raises(DraftFileError, match="disk is full"):
        autosaver.maybe_save()
    assert autosaver.dirty and autosaver.last_error is not None
    assert autosaver.due_in() == pytest.approx(5)
    clock.now += 1
    assert not autosaver.maybe_save()  # no spinning on a full disk
    assert len(failures) == 1
    autosaver._save = save_draft  # space freed
    clock.now += 4
    assert autosaver.maybe_save()
    assert load_draft(path).text == "precious" and autosaver.last_error is None


def test_save_as_moves_autosave_to_the_new_path(setup, tmp_path: Path) -> None:
    draft, path, clock, autosaver = setup
    new_path = tmp_path / "renamed.json"
    autosaver.path = new_path
    assert autosaver.dirty
    assert autosaver.save_now()
    assert load_draft(new_path).title == "Auto"


def test_refused_path_is_not_autosaved_over(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(b"{broken")
    with pytest.raises(DraftFileError):
        load_draft(path)
    draft = Draft("Recovered")
    autosaver = Autosaver(draft, path, saved=False)
    with pytest.raises(DraftFileError, match="another name"):
        autosaver.save_now()
    assert path.read_bytes() == b"{broken"


def test_real_disk_full_through_autosaver(setup, monkeypatch) -> None:
    draft, path, clock, autosaver = setup
    import storyterm.story.atomic_write as atomic_write

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_write.tempfile, "mkstemp", no_space)
    draft.set_text("new")
    with pytest.raises(DraftFileError, match="disk is full; the previous version is unchanged"):
        autosaver.save_now()
    monkeypatch.undo()
    assert load_draft(path).text == ""
