"""Drafts a writer can manage from the editor: the last draft reopens, rename (the file follows the title and
never replaces another), delete to the trash and restore, export (.md/.txt; other endings refused)."""

from __future__ import annotations

from pathlib import Path

from storyterm.story import load_draft
from storyterm.story.recent import last_draft, remember_last_draft
from storyterm.story.trash import trash_dir
from storyterm.tui.screens.confirm import ConfirmScreen
from storyterm.tui.screens.prompt import PromptScreen
from tests.tui.test_app_loop import settle

SIZE = (100, 30)


async def answer_prompt(pilot, text: str) -> None:
    assert isinstance(pilot.app.screen, PromptScreen)
    field = pilot.app.screen.query_one("#prompt-input")
    field.value = text
    await pilot.press("enter")
    await pilot.pause()


async def run_palette(app, pilot, title: str) -> None:
    command = next(c for c in app.get_system_commands(app.screen) if c.title == title)
    await command.callback()
    await pilot.pause()


async def test_relaunch_reopens_the_last_draft(make_app, tmp_path: Path) -> None:
    record = tmp_path / "state" / "last-draft"
    app = make_app(last_draft_record=record)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press(*"The last words")
        await app.action_quit()
    path = last_draft(record)
    assert path is not None and load_draft(path).text == "The last words"
    again = make_app(draft_path=path, last_draft_record=record)  # what run_app does with no draft argument
    async with again.run_test(size=SIZE) as pilot:
        await settle(again, pilot)
        assert again.editor.text == "The last words" and again.draft_path == path


def test_the_last_draft_is_forgotten_once_it_is_gone(tmp_path: Path) -> None:
    record = tmp_path / "last-draft"
    assert last_draft(record) is None
    draft = tmp_path / "story.json"
    draft.write_text("{}", encoding="utf-8")
    remember_last_draft(draft, record)
    assert last_draft(record) == draft.resolve()
    draft.unlink()
    assert last_draft(record) is None


async def test_rename_moves_the_file_with_the_title_and_never_over_another(make_app, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press(*"First story")
        app.save_now(force=True)
        other = app.drafts_dir / "night-train.json"
        other.write_bytes(b'{"not": "mine"}')
        old = app.draft_path
        await run_palette(app, pilot, "Rename")
        await answer_prompt(pilot, "Night Train")
        assert app.draft.title == "Night Train"
        assert app.draft_path == app.drafts_dir / "night-train-2.json"
        assert other.read_bytes() == b'{"not": "mine"}'  # never replaced
        assert not old.exists()
        assert load_draft(app.draft_path).title == "Night Train"
        assert "night-train-2" in str(app.status.render())


async def test_delete_moves_to_the_trash_and_restore_brings_it_back(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press(*"Doomed words")
        app.save_now(force=True)
        path = app.draft_path
        await run_palette(app, pilot, "Delete draft")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.click("#yes")
        await pilot.pause()
        assert not path.exists()
        trashed = trash_dir(app.drafts_dir) / path.name
        assert load_draft(trashed).text == "Doomed words"
        assert app.draft.text == "" and app.editor.text == ""
        await run_palette(app, pilot, "Restore a draft")
        await pilot.press("enter")  # the only draft in the trash
        await pilot.pause()
        assert app.draft.text == "Doomed words" and app.draft_path == path
        assert not trashed.exists()


async def test_keeping_the_draft_deletes_nothing(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press(*"Kept")
        app.save_now(force=True)
        await run_palette(app, pilot, "Delete draft")
        await pilot.press("escape")
        await pilot.pause()
        assert app.draft_path.exists() and app.draft.text == "Kept"


async def test_export_from_the_editor_and_unknown_endings_refused(make_app, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press(*"Exported words")
        await run_palette(app, pilot, "Export")
        await answer_prompt(pilot, str(tmp_path / "story.docx"))
        assert not (tmp_path / "story.docx").exists()
        assert any("cannot write .docx" in str(n.message) for n in app._notifications)
        await run_palette(app, pilot, "Export")
        await answer_prompt(pilot, str(tmp_path / "story.txt"))
        assert (tmp_path / "story.txt").read_text("utf-8").endswith("Exported words\n")
        await run_palette(app, pilot, "Export")
        await answer_prompt(pilot, str(tmp_path / "story.txt"))  # exists: refused, not replaced
        assert any("exists" in str(n.message) for n in app._notifications)


async def test_an_imported_draft_without_a_genre_is_told_which_it_got(make_app, tmp_path: Path) -> None:
    from storyterm.story.export import import_text_file

    source = tmp_path / "plot.txt"
    source.write_text("A detective walks into the rain.\n", encoding="utf-8")
    path = import_text_file(source, tmp_path / "drafts")
    assert load_draft(path).genre is None
    app = make_app(draft_path=path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.draft.genre == app.picker.genre is not None
        assert any("This draft had no genre" in str(n.message) and app.draft.genre in str(n.message)
                   for n in app._notifications)
        assert app.draft.genre in str(app.status.render())
