"""``storyterm drafts`` and ``storyterm export``: the handlers through argparse, and end to end through the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from storyterm.engine.errors import StorytermError
from storyterm.story.commands import DraftNotFoundError, register, resolve_draft
from storyterm.story.draft import Draft
from storyterm.story.file_errors import DraftFileError
from storyterm.story.store import create_draft_file, default_drafts_dir


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="storyterm")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def make(title: str, text: str, genre: str | None = "horror", folder: Path | None = None) -> Path:
    draft = Draft(title, genre)
    draft.set_text(text)
    return create_draft_file(draft, folder)


def test_drafts_lists_a_table(capsys) -> None:
    make("Haunted Hill", "It was a dark night.")
    make("Second", "One two", genre=None)
    (default_drafts_dir() / "broken.json").write_text("{")
    assert run(["drafts"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["MODIFIED", "WORDS", "GENRE", "TITLE", "FILE"]
    body = "\n".join(lines[1:])
    assert "Haunted Hill" in body and "haunted-hill.json" in body and " 5 " in body
    assert "(unreadable: not valid JSON" in body


def test_drafts_empty_folder(tmp_path: Path, capsys) -> None:
    assert run(["drafts", "--folder", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"No drafts in {tmp_path}."


def test_export_to_stdout_by_title_name_or_path(tmp_path: Path, capsys) -> None:
    path = make("Export Me", "The end.", folder=tmp_path)
    for name in ("Export Me", "export-me", "export-me.json", str(path)):
        assert run(["export", name, "--folder", str(tmp_path)]) == 0
        assert capsys.readouterr().out == "# Export Me\n\n*Genre: Horror*\n\nThe end.\n"
    assert run(["export", "export me", "--folder", str(tmp_path), "--format", "txt"]) == 0
    assert capsys.readouterr().out == "Export Me\n\nThe end.\n"


def test_export_to_file(tmp_path: Path, capsys) -> None:
    make("File Out", "Words here.", folder=tmp_path)
    target = tmp_path / "out" / "story.txt"
    assert run(["export", "File Out", "--folder", str(tmp_path), "-o", str(target)]) == 0
    assert target.read_text("utf-8") == "File Out\n\nWords here.\n"
    assert "as txt" in capsys.readouterr().err


def test_export_refuses_a_file_ending_it_cannot_write(tmp_path: Path) -> None:
    make("Docx", "Words here.", folder=tmp_path)
    target = tmp_path / "story.docx"
    with pytest.raises(DraftFileError, match=r"cannot write \.docx files.*\.md.*\.txt"):
        run(["export", "Docx", "--folder", str(tmp_path), "-o", str(target)])
    assert not target.exists()
    assert run(["export", "Docx", "--folder", str(tmp_path), "-o", str(target), "--format", "md"]) == 0  # asked for
    assert run(["export", "Docx", "--folder", str(tmp_path), "-o", str(tmp_path / "story.markdown")]) == 0


def test_export_unknown_and_ambiguous_names(tmp_path: Path) -> None:
    with pytest.raises(DraftNotFoundError, match="no draft 'ghost'"):
        run(["export", "ghost", "--folder", str(tmp_path)])
    make("Twin Peaks", "a", folder=tmp_path)
    make("Twin Peaks", "b", folder=tmp_path)
    with pytest.raises(DraftNotFoundError, match="several drafts are titled 'TWIN PEAKS'"):
        resolve_draft("TWIN PEAKS", tmp_path)
    assert resolve_draft("twin-peaks", tmp_path).name == "twin-peaks.json"  # the file name is exact


def test_export_of_a_corrupt_draft_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff")
    with pytest.raises(DraftFileError) as info:
        run(["export", str(bad)])
    assert isinstance(info.value, StorytermError) and "not UTF-8" in str(info.value)


def test_cli_main_runs_the_story_commands(tmp_path: Path, capsys) -> None:
    from storyterm import cli
    make("Via CLI", "Hello there.")
    assert cli.main(["drafts"]) == 0
    assert "Via CLI" in capsys.readouterr().out
    assert cli.main(["export", "Via CLI", "--format", "txt"]) == 0
    assert capsys.readouterr().out == "Via CLI\n\nHello there.\n"
    code = cli.main(["export", "missing-draft"])
    captured = capsys.readouterr()
    assert code == 1
    assert "no draft 'missing-draft'" in captured.err and len(captured.err.strip().splitlines()) == 1


def test_import_creates_a_new_draft(tmp_path: Path, capsys) -> None:
    source = tmp_path / "old-notes.txt"
    source.write_text("Once there was a lighthouse.\n", "utf-8")
    folder = tmp_path / "drafts"
    assert run(["import", str(source), "--genre", "Sci-Fi", "--folder", str(folder)]) == 0
    assert "'Old notes' (5 words)" in capsys.readouterr().out
    (path,) = folder.iterdir()
    assert run(["export", path.name, "--folder", str(folder)]) == 0
    assert capsys.readouterr().out == "# Old notes\n\n*Genre: Sci-Fi*\n\nOnce there was a lighthouse.\n"
    with pytest.raises(StorytermError, match="--genre"):
        run(["import", str(source), "--genre", "!!", "--folder", str(folder)])
    with pytest.raises(DraftFileError, match="no such file"):
        run(["import", str(tmp_path / "missing.txt"), "--folder", str(folder)])
    assert len(list(folder.iterdir())) == 1


def test_export_never_replaces_the_draft_itself(tmp_path: Path) -> None:
    path = make("Keep me", "A story with history.", folder=tmp_path)
    before = path.read_bytes()
    for extra in ([], ["--force"]):
        with pytest.raises(StorytermError, match="is the draft being exported"):
            run(["export", str(path), "-o", str(path), *extra])
    assert path.read_bytes() == before


def test_export_never_replaces_another_draft_and_other_files_only_with_force(tmp_path: Path) -> None:
    path = make("Source", "Words.", folder=tmp_path)
    other = make("Other", "Another story.", folder=tmp_path)
    other_bytes = other.read_bytes()
    with pytest.raises(StorytermError, match="is a storyterm draft"):
        run(["export", str(path), "-o", str(other), "--force", "--format", "md"])
    assert other.read_bytes() == other_bytes
    notes = tmp_path / "notes.md"
    notes.write_text("my notes", encoding="utf-8")
    with pytest.raises(StorytermError, match="exists; pass --force"):
        run(["export", str(path), "-o", str(notes)])
    assert notes.read_text(encoding="utf-8") == "my notes"
    assert run(["export", str(path), "-o", str(notes), "--force"]) == 0
    assert "Words." in notes.read_text(encoding="utf-8")


def test_drafts_prints_control_characters_in_titles_escaped(capsys) -> None:
    make("\x1b]0;pwned\x07\x1b[2JTitle", "words")
    assert run(["drafts"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07\\x1b[2JTitle" in out
