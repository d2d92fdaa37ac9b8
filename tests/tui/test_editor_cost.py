"""Drawing the editor and finding the pending passage cost O(edit), not O(story) (issue 12: a key had to cost the
same at 1 KB and 1 MB). Counted, not timed: the whole document is never joined while rows are drawn."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storyterm.tui.widgets.editor import StoryEditor, common_prefix_length
from textual.app import App, ComposeResult


class EditorApp(App):
    def __init__(self, story: str, pending: str = "") -> None:
        super().__init__()
        self.story, self.pending = story, pending

    def compose(self) -> ComposeResult:
        yield StoryEditor(id="editor", placeholder="Type the start of a story")

    def on_mount(self) -> None:
        self.query_one(StoryEditor).show(self.story, self.pending)


def count_joins(monkeypatch) -> list[int]:
    from textual.document._document import Document

    joins: list[int] = []
    original = Document.text.fget

    def counted(document):
        joins.append(1)
        return original(document)

    monkeypatch.setattr(Document, "text", property(counted))
    return joins


async def test_drawing_rows_never_joins_the_whole_document(monkeypatch) -> None:
    app = EditorApp("Long ago.\n\n" * 500, " A passage\nwith two lines")
    async with app.run_test(size=(80, 24)) as pilot:
        editor = app.query_one(StoryEditor)
        await pilot.pause()
        joins = count_joins(monkeypatch)
        editor.scroll_end(animate=False)
        editor.refresh()
        await pilot.pause()
        assert joins == []


async def test_the_placeholder_still_shows_on_an_empty_story_only() -> None:
    app = EditorApp("")
    async with app.run_test(size=(80, 24)) as pilot:
        editor = app.query_one(StoryEditor)
        await pilot.pause()
        assert "Type the start" in editor.render_line(0).text
        editor.insert("Once")
        await pilot.pause()
        assert editor.render_line(0).text.startswith("Once")


@pytest.mark.parametrize(
    ("story", "pending"),
    [("", "One"), ("Story.", " More"), ("Story.", "\n\nA new paragraph"), ("Story.\n", "Line\nline\n"),
     ("a\nb\nc", "x\n"), ("Story.", "\n")],
)
async def test_the_pending_start_is_where_the_story_ends(story: str, pending: str) -> None:
    app = EditorApp(story, pending)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        editor = app.query_one(StoryEditor)
        assert editor.pending_start == editor.document.get_location_from_index(len(story))


@given(st.text(alphabet="abc", max_size=40), st.text(alphabet="abc", max_size=40))
def test_common_prefix_length_matches_a_character_walk(a: str, b: str) -> None:
    walk = 0
    while walk < min(len(a), len(b)) and a[walk] == b[walk]:
        walk += 1
    assert common_prefix_length(a, b) == walk
