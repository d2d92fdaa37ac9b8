"""A draft file's bytes: stable, readable JSON that round-trips; every bad file is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyterm.story.file_errors import DraftFileError
from storyterm.story.store import load_draft, save_draft
from tests.story.draft_files import assert_one_line_naming, sample_draft


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


def test_json_written_is_standard(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    save_draft(sample_draft(), path)
    json.loads(path.read_text("utf-8"), parse_constant=lambda c: pytest.fail(c))
