"""The story tree view (f12): it shows every passage and alternative with the current story marked, enter makes
another branch the story (undo returns), ctrl+g continues from any node, delete prunes a branch, the writer's words
are shown literally, and it fits 80x24."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from textual.widgets import Static

from storyterm.engine.settings import DEFAULT_SETTINGS
from storyterm.story import Draft, load_draft, save_draft
from storyterm.story.tree import story_through, tree_layout
from storyterm.tui.app import StorytermApp
from storyterm.tui.screens.confirm import ConfirmScreen
from storyterm.tui.screens.story_tree import StoryTreeScreen, StoryTreeView
from tests.tui.test_app_loop import APP_SIZE, settle, type_and_generate


def take(draft: Draft, text: str):
    return draft.add_alternative(text, genre=None, settings=DEFAULT_SETTINGS, seed=1, model="tiny")


def labels(tree: StoryTreeView) -> list[tuple[int, str]]:
    """(depth, label) for every node in the tree, expanded or not, in tree order."""
    rows: list[tuple[int, str]] = []

    def walk(node, depth: int) -> None:
        for child in node.children:
            rows.append((depth, child.label.plain))
            walk(child, depth + 1)

    walk(tree.root, 0)
    return rows


async def open_tree(app: StorytermApp, pilot) -> StoryTreeView:
    await pilot.press("f12")
    await pilot.pause()
    await pilot.pause()
    assert isinstance(app.screen, StoryTreeScreen)
    return app.screen.query_one(StoryTreeView)


async def move_to(pilot, tree: StoryTreeView, passage_id: str) -> None:
    """Walk the cursor with the keyboard (right opens folded takes) until it rests on ``passage_id``."""
    for _ in range(200):
        node = tree.cursor_node
        if node is not None and node.data == passage_id:
            return
        if node is not None and node.allow_expand and not node.is_expanded:
            await pilot.press("right")
        else:
            await pilot.press("up" if _below(tree, passage_id) else "down")
    raise AssertionError("cursor never reached the passage")


def _below(tree: StoryTreeView, passage_id: str) -> bool:
    """Whether the cursor is below the target in tree order (so the walk goes up)."""
    order: list[str] = []

    def walk(node) -> None:
        for child in node.children:
            order.append(child.data)
            walk(child)

    walk(tree.root)
    return order.index(tree.cursor_node.data) > order.index(passage_id)


@asynccontextmanager
async def tree_on_branched_draft(make_app, tmp_path: Path):
    """The app on branched_draft's file with the tree open: (app, pilot, tree, ids, path)."""
    path = tmp_path / "tree.json"
    _, ids = branched_draft(path)
    app: StorytermApp = make_app(draft_path=path)
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        yield app, pilot, await open_tree(app, pilot), ids, path


def shape(entries, depth: int = 0) -> list:
    """The layout as (depth, passage id, on the story's path) rows."""
    rows = []
    for entry in entries:
        rows.append((depth, entry.passage.id, entry.on_path))
        rows.extend(shape(entry.nested, depth + 1))
    return rows


def branched_draft(path: Path) -> tuple[Draft, dict]:
    draft = Draft("Tree")
    draft.set_text("The lighthouse keeper woke.")
    a1 = take(draft, " A storm was coming.")
    a2 = take(draft, " The lamp had gone out.")
    draft.select_alternative(0)
    draft.accept()
    b1 = take(draft, " She climbed the stairs.")
    draft.accept()
    save_draft(draft, path)
    return draft, {"a1": a1.id, "a2": a2.id, "b1": b1.id}


async def test_the_tree_shows_passages_and_alternatives_with_the_story_marked(make_app, tiny_loader) -> None:
    app: StorytermApp = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "Rain fell.")
        await pilot.press("ctrl+r")  # a second take at the same spot
        await settle(app, pilot)
        await pilot.press("tab")  # accept it
        await pilot.press("ctrl+g")
        await settle(app, pilot)
        first, second, third = app.draft.passages
        tree = await open_tree(app, pilot)
        rows = labels(tree)
        assert [depth for depth, _ in rows] == [0, 1, 0]  # the other take folded under the one kept
        assert rows[0][1].startswith("● ") and rows[2][1].startswith("● ") and rows[1][1].startswith("○ ")
        assert " ".join(second.text.split())[:8] in rows[0][1] and rows[0][1].endswith(
            f"{len(second.text.split())}w +1")
        assert " ".join(first.text.split())[:8] in rows[1][1]
        assert tree.cursor_node.data == third.id  # the cursor starts where the story is
        preview = app.screen.query_one("#tree-preview", Static)
        assert preview.content.plain == app.draft.text_with_pending  # the whole branch, up to the passage
        await pilot.press("escape")
        assert not isinstance(app.screen, StoryTreeScreen)


async def test_enter_makes_another_branch_the_story_and_undo_returns(make_app, tmp_path: Path) -> None:
    path = tmp_path / "tree.json"
    draft, ids = branched_draft(path)
    app: StorytermApp = make_app(draft_path=path)
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press(*" Typed.")
        before = app.editor.text
        tree = await open_tree(app, pilot)
        await move_to(pilot, tree, ids["a2"])
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, StoryTreeScreen)
        assert app.draft.text == "The lighthouse keeper woke. The lamp had gone out."
        assert app.editor.text == app.draft.text
        assert app.draft.last_accepted.id == ids["a2"]
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert app.editor.text == before == app.draft.text
        assert load_draft(path).text == before  # saved at once, like every structural change
        await pilot.press("ctrl+y")  # back on the other branch: a new passage continues it
        await pilot.press("ctrl+g")
        await settle(app, pilot)
        assert app.draft.pending.parent_id == ids["a2"]
        assert app.draft.text == "The lighthouse keeper woke. The lamp had gone out."


async def test_continue_from_a_node_generates_under_it_and_the_tree_survives_reopening(make_app,
                                                                                       tmp_path: Path) -> None:
    async with tree_on_branched_draft(make_app, tmp_path) as (app, pilot, tree, ids, path):
        await move_to(pilot, tree, ids["a2"])
        await pilot.press("ctrl+g")
        await settle(app, pilot)
        pending = app.draft.pending
        assert pending is not None and pending.parent_id == ids["a2"]
        assert app.draft.text == "The lighthouse keeper woke. The lamp had gone out."
        assert app.editor.text == app.draft.text_with_pending
        await pilot.press("tab")
        tree = await open_tree(app, pilot)
        assert tree.cursor_node.data == pending.id
        assert [e.passage.id for e in tree_layout(app.draft)] == [ids["a2"], pending.id]
        await pilot.press("escape")
        assert app.save_now()
    reopened = load_draft(path)
    assert [(p.id, p.parent_id, p.text) for p in reopened.passages] == [
        (p.id, p.parent_id, p.text) for p in app.draft.passages]
    assert shape(tree_layout(reopened)) == shape(tree_layout(app.draft))
    assert story_through(reopened, pending.id) == app.draft.text


async def test_delete_prunes_a_branch_after_asking(make_app, tmp_path: Path) -> None:
    async with tree_on_branched_draft(make_app, tmp_path) as (app, pilot, tree, ids, path):
        text = app.draft.text
        await move_to(pilot, tree, ids["a2"])
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")  # keep it
        await pilot.pause()
        assert len(app.draft.passages) == 3
        await pilot.press("delete")
        await pilot.pause()
        await pilot.click("#yes")
        await pilot.pause()
        assert isinstance(app.screen, StoryTreeScreen)
        assert [p.id for p in app.draft.passages] == [ids["a1"], ids["b1"]]
        assert len(labels(app.screen.query_one(StoryTreeView))) == 2
        assert app.draft.text == text
        assert [p.id for p in load_draft(path).passages] == [ids["a1"], ids["b1"]]


async def test_markup_in_passages_is_shown_literally(make_app, tmp_path: Path) -> None:
    path = tmp_path / "markup.json"
    draft = Draft("[b]Odd[/b]")
    draft.set_text("[red]Start[/red] [link=x]")
    passage = take(draft, " [bold]not bold[/] [/nope] \\[x]")
    save_draft(draft, path)
    app: StorytermApp = make_app(draft_path=path)
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        tree = await open_tree(app, pilot)
        assert "[bold]not bold[/] [/nope] \\[x]" in labels(tree)[0][1]
        preview = app.screen.query_one("#tree-preview", Static)
        assert preview.content.plain == "[red]Start[/red] [link=x]" + passage.text


async def test_the_tree_fits_80x24_with_labels_cut_to_the_pane(make_app, tmp_path: Path) -> None:
    path = tmp_path / "long.json"
    draft = Draft("Long")
    draft.set_text("Once.")
    for n in range(40):
        take(draft, f" A rather long passage number {n} that goes on and on about the sea and the wind.")
        take(draft, f" Another take {n} on the same spot, also long enough to need cutting down to size.")
        draft.accept()
    save_draft(draft, path)
    app: StorytermApp = make_app(draft_path=path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        tree = await open_tree(app, pilot)
        await pilot.press("right")  # unfold the takes at the cursor
        await pilot.pause()
        screen = app.screen
        for selector in ("#tree-title", "#story-tree", "#tree-preview-scroll", "#tree-hint"):
            region = screen.query_one(selector).region
            assert region.width > 0 and region.height > 0, selector
            assert region.right <= 80 and region.bottom <= 24, selector
        assert tree.virtual_size.width <= tree.size.width  # no label runs past the pane
        assert all(label.endswith(("w", "+1")) for _, label in labels(tree))
        assert tree.cursor_node.data == app.draft.passages[-1].id
        assert tree.cursor_node.line >= tree.scroll_offset.y  # the story's end is in view
        assert tree.cursor_node.line < tree.scroll_offset.y + tree.size.height


async def test_a_token_swap_is_another_take_that_says_where_it_branched(make_app, tmp_path: Path) -> None:
    path = tmp_path / "swap.json"
    draft = Draft("Swap")
    draft.set_text("The door")
    source = take(draft, " opened slowly.")
    swapped = draft.add_swap(source.id, 1, " opened quickly.", tokens=None, genre=None, settings=DEFAULT_SETTINGS,
                             seed=1, model="tiny")
    save_draft(draft, path)
    app: StorytermApp = make_app(draft_path=path)
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        tree = await open_tree(app, pilot)
        assert [(depth, label[:2]) for depth, label in labels(tree)] == [(0, "● "), (1, "○ ")]
        assert tree.cursor_node.data == swapped.id
        head = app.screen.query_one("#tree-preview-head", Static)
        assert "take 2 of 2" in head.content.plain and "take 1 with token 2 swapped" in head.content.plain


async def test_a_click_only_reads_a_branch_and_a_double_click_makes_it_the_story(make_app, tmp_path: Path) -> None:
    async with tree_on_branched_draft(make_app, tmp_path) as (app, pilot, tree, ids, _path):
        text = app.draft.text
        await pilot.click("#story-tree", offset=(8, 0))  # the first passage's line
        await pilot.pause()
        assert isinstance(app.screen, StoryTreeScreen) and tree.cursor_node.data == ids["a1"]
        assert app.draft.text == text
        preview = app.screen.query_one("#tree-preview", Static)
        assert preview.content.plain == "The lighthouse keeper woke. A storm was coming."
        await pilot.double_click("#story-tree", offset=(8, 0))
        await pilot.pause()
        assert not isinstance(app.screen, StoryTreeScreen)
        assert app.draft.text == "The lighthouse keeper woke. A storm was coming."
