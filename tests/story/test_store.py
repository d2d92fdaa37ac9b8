"""The store: where drafts live, and new drafts that never take a name another storyterm took meanwhile."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from storyterm.story import store
from storyterm.story.store import load_draft
from tests.story.draft_files import make_os_call_fail, sample_draft


def test_default_drafts_dir_is_under_user_data(tmp_path_factory) -> None:
    assert store.default_drafts_dir().parts[-2:] == ("storyterm", "drafts")
    assert str(store.default_drafts_dir()).startswith(os.environ["XDG_DATA_HOME"])


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
