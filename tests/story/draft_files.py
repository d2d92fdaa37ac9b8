"""Draft-file test helpers: a sample draft, the one-line error check, and an os call made to fail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storyterm.engine.errors import StorytermError
from storyterm.engine.settings import DEFAULT_SETTINGS
from storyterm.story.draft import Draft
from storyterm.story.file_errors import DraftFileError


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
    """``os.<name>`` raises ``OSError(code, message)`` until the monkeypatch is undone."""

    def fail(*args, **kwargs):
        raise OSError(code, message)

    monkeypatch.setattr(os, name, fail)
