"""The story tree: every passage and alternative of the draft, the current story highlighted, a preview of any
branch's text. Enter makes a branch the story, ctrl+g continues from it, delete prunes it.

The layout (which passage sits where) is ``storyterm.story.tree.tree_layout``: the current story is the top line
and other takes nest under the take the story went on with, so a long story does not march off to the right.
Labels and previews are the writer's words: always ``rich.text.Text`` built from plain strings, never markup.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from storyterm.story.draft import Draft, DraftError, Passage
from storyterm.story.tree import (
    TreeEntry,
    current_path,
    first_words,
    path_to,
    story_before,
    tree_layout,
    word_count,
)

# The preview shows at most this much of the story before the passage (a long story's start is not needed to
# read a branch, and re-wrapping 100 000 characters on every cursor move would be slow).
PREVIEW_CONTEXT_CHARS = 1500
GUIDE_DEPTH = 3

# What the screen returns: ("go", passage id) or ("continue", passage id); None: closed.
TreeChoice = tuple[str, str]


def passage_label(entry: TreeEntry, width: int) -> Text:
    """``● first words…  12w +2``: on the story now (●) or not (○), the passage's start cut to fit ``width``
    cells, its word count, and how many other takes are folded under it."""
    marker = Text("● " if entry.on_path else "○ ", style="bold" if entry.on_path else "dim")
    count = f" {word_count(entry.passage.text)}w"
    if entry.nested and not entry.continues_line:
        count += f" +{len(entry.nested)}"
    room = max(4, width - len(marker) - len(count))
    words = first_words(entry.passage.text, room) or "(empty)"
    label = Text.assemble(marker, Text(words, style="bold" if entry.on_path else ""), Text(count, style="dim"))
    label.no_wrap = True
    return label


class StoryTreeView(Tree[str]):
    """The tree widget: node data is the passage id; labels are re-cut to the width whenever it changes."""

    BINDINGS = [
        Binding("enter", "choose", "Make this the story", show=False),  # instead of Tree's select
        Binding("right", "open_node", "Open", show=False),
        Binding("left", "close_node", "Close", show=False),
    ]

    class Chosen(Message):
        """Enter or a double click: make this passage's branch the story. (A single click only moves the
        cursor, so reading a branch with the mouse never changes the story.)"""

        def __init__(self, passage_id: str) -> None:
            super().__init__()
            self.passage_id = passage_id

    def __init__(self, **kwargs) -> None:
        super().__init__("story", **kwargs)
        self.show_root = False
        self.auto_expand = False
        self.guide_depth = GUIDE_DEPTH
        self._entries: dict[str, tuple[TreeEntry, int]] = {}  # passage id -> (entry, depth)
        self.nodes_by_passage: dict[str, TreeNode[str]] = {}

    def show(self, layout: list[TreeEntry]) -> None:
        """Fill the tree from a layout; nested takes start folded (the label says how many)."""
        self.clear()
        self._entries.clear()
        self.nodes_by_passage.clear()
        width = self._label_width()
        work: list[tuple[TreeNode[str], list[TreeEntry], int]] = [(self.root, layout, 0)]
        while work:  # iterative: a branch of a branch of … must not recurse
            parent, entries, depth = work.pop()
            for entry in entries:
                label = passage_label(entry, width - depth * GUIDE_DEPTH)
                node = parent.add(label, data=entry.passage.id, allow_expand=bool(entry.nested))
                self._entries[entry.passage.id] = (entry, depth)
                self.nodes_by_passage[entry.passage.id] = node
                if entry.nested:
                    work.append((node, entry.nested, depth + 1))

    def _label_width(self) -> int:
        # The icon (▶ ) takes 2 cells, the scrollbar 2; before the first layout, assume a narrow pane.
        return (self.size.width or 36) - 4

    def on_resize(self, event: events.Resize) -> None:
        width = self._label_width()
        for passage_id, (entry, depth) in self._entries.items():
            self.nodes_by_passage[passage_id].set_label(passage_label(entry, width - depth * GUIDE_DEPTH))

    def action_choose(self) -> None:
        node = self.cursor_node
        if node is not None and node.data is not None:
            self.post_message(self.Chosen(node.data))

    async def _on_click(self, event: events.Click) -> None:
        before = self.cursor_line
        await super()._on_click(event)
        if event.chain >= 2 and self.cursor_line == before and not event.style.meta.get("toggle", False):
            self.action_choose()

    def action_open_node(self) -> None:
        node = self.cursor_node
        if node is not None and node.allow_expand:
            node.expand()

    def action_close_node(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.allow_expand and node.is_expanded:
            node.collapse()
        elif node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent)


class StoryTreeScreen(ModalScreen[TreeChoice | None]):
    """Walk the draft's tree. ``on_change`` is called after a branch was deleted (the app saves and redraws)."""

    DEFAULT_CSS = """
    StoryTreeScreen {
        align: center middle;
    }
    #tree-dialog {
        width: 100%;
        height: 100%;
        max-width: 160;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    #tree-title {
        text-style: bold;
        height: 1;
    }
    #tree-body {
        height: 1fr;
    }
    #story-tree {
        width: 1fr;
        height: 100%;
        overflow-x: hidden;
    }
    #tree-preview-pane {
        width: 1fr;
        height: 100%;
        padding: 0 0 0 1;
        border-left: tall $primary 30%;
    }
    #tree-preview-head {
        color: $text-muted;
        height: auto;
        margin-bottom: 1;
    }
    #tree-preview-scroll {
        height: 1fr;
    }
    #tree-hint {
        color: $text-muted;
        height: auto;
    }
    """

    BINDINGS = [
        Binding("escape", "close", "Close", show=False),
        Binding("ctrl+g", "continue_here", "Continue here", show=False),
        Binding("delete", "delete_branch", "Delete branch", show=False),
    ]

    def __init__(self, draft: Draft, on_change: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.draft = draft
        self.on_change = on_change
        self._known: dict[str, str] = {}  # story_before cache for this visit

    def compose(self) -> ComposeResult:
        with Vertical(id="tree-dialog"):
            yield Static(id="tree-title", markup=False)
            with Horizontal(id="tree-body"):
                yield StoryTreeView(id="story-tree")
                with Vertical(id="tree-preview-pane"):
                    yield Static(id="tree-preview-head", markup=False)  # stays put while the text scrolls
                    with VerticalScroll(id="tree-preview-scroll"):
                        yield Static(id="tree-preview", markup=False)
            yield Static(
                "enter: make this the story · ctrl+g: continue from here · space/→: other takes · "
                "del: delete branch · tab: preview · esc: close",
                id="tree-hint", markup=False,
            )

    @property
    def tree(self) -> StoryTreeView:
        return self.query_one(StoryTreeView)

    def on_mount(self) -> None:
        self._rebuild()
        self.tree.focus()

    def _rebuild(self, cursor_on: str | None = None) -> None:
        layout = tree_layout(self.draft)
        self._known.clear()
        tree = self.tree
        tree.show(layout)
        count = len(self.draft.passages)
        title = f"Story tree — {count} passage{'s' if count != 1 else ''}" if count else "Story tree — empty"
        self.query_one("#tree-title", Static).update(Text(f"{title}   ● the story now   ○ other takes"))
        tip = self.draft.story_tip()
        target = cursor_on or (tip.id if tip else None)
        node = tree.nodes_by_passage.get(target or "")
        if node is None and layout:
            node = tree.nodes_by_passage[layout[-1].passage.id]
        if node is not None:
            _expand_to(node)
            self.call_after_refresh(self._place_cursor, node)  # a node has its line once the tree is built
        self._preview(node.data if node is not None else None)

    def _place_cursor(self, node: TreeNode[str]) -> None:
        self.tree.last_line  # noqa: B018 - builds the tree's lines (gives the node its line) if not done yet
        self.tree.move_cursor(node, animate=False)
        self.tree.scroll_to_node(node, animate=False)

    @on(Tree.NodeHighlighted, "#story-tree")
    def _highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        self._preview(event.node.data)

    @on(StoryTreeView.Chosen)
    def _chosen(self, event: StoryTreeView.Chosen) -> None:
        self.dismiss(("go", event.passage_id))

    def _preview(self, passage_id: str | None) -> None:
        head = self.query_one("#tree-preview-head", Static)
        body = self.query_one("#tree-preview", Static)
        if passage_id is None:
            head.update(Text("No passages yet: generate one (ctrl+g) and it appears here."))
            body.update("")
            return
        passage = self.draft.passage(passage_id)
        head.update(Text(self._describe(passage)))
        before = story_before(self.draft, passage_id, self._known)
        text = Text()
        if before is None:
            text.append("(the story before this passage was not kept in this older draft)\n\n", style="italic")
        elif len(before) > PREVIEW_CONTEXT_CHARS:
            cut = before[-PREVIEW_CONTEXT_CHARS:]
            text.append(f"… ({word_count(before) - word_count(cut)} words before) …", style="italic dim")
            text.append(cut[cut.find(" ") + 1:] if " " in cut else cut, style="dim")
        else:
            text.append(before, style="dim")
        text.append(passage.text or "(empty passage)", style="bold")
        body.update(text)
        self.call_after_refresh(self.query_one("#tree-preview-scroll", VerticalScroll).scroll_end, animate=False)

    def _describe(self, passage: Passage) -> str:
        path = path_to(self.draft, passage.id)
        takes = [p for p in self.draft.passages if p.parent_id == passage.parent_id]
        where = ("pending (not accepted yet)" if self.draft.pending is passage
                 else "in the story now" if passage.id in {p.id for p in current_path(self.draft)}
                 else "not in the story")
        parts = [f"passage {len(path)} of its branch", f"{word_count(passage.text)} words",
                 f"take {takes.index(passage) + 1} of {len(takes)}", where]
        if passage.stopped:
            parts.append("stopped early")
        branch = passage.branch  # a token swap records where it branched
        if branch and branch.get("from") in {p.id for p in takes}:
            source = next(p for p in takes if p.id == branch["from"])
            parts.append(f"take {takes.index(source) + 1} with token {branch['token'] + 1} swapped")
        parts.append(f"{passage.model}, {passage.created_at[:16].replace('T', ' ')}")
        return " · ".join(parts)

    def _cursor_passage(self) -> str | None:
        node = self.tree.cursor_node
        return node.data if node is not None else None

    def action_continue_here(self) -> None:
        passage_id = self._cursor_passage()
        if passage_id is not None:
            self.dismiss(("continue", passage_id))

    def action_close(self) -> None:
        self.dismiss(None)

    def action_delete_branch(self) -> None:
        from storyterm.tui.screens.confirm import ConfirmScreen

        passage_id = self._cursor_passage()
        if passage_id is None:
            return
        below = _descendants(self.draft, passage_id)
        passage = self.draft.passage(passage_id)
        what = f"“{first_words(passage.text, 40)}”" + (f" and the {below} passages after it" if below else "")
        question = (f"Delete {what} from the tree? The story's text stays as it is. "
                    "This cannot be undone.")

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                self.draft.delete_branch(passage_id)
            except DraftError as error:
                self.notify(str(error), severity="error")
                return
            parent = passage.parent_id
            self._rebuild(cursor_on=parent if parent in self.tree.nodes_by_passage else None)
            if self.on_change is not None:
                self.on_change()

        self.app.push_screen(ConfirmScreen(question, yes="Delete", no="Keep"), answered)


def _descendants(draft: Draft, passage_id: str) -> int:
    doomed = {passage_id}
    for passage in draft.passages:
        if passage.parent_id in doomed:
            doomed.add(passage.id)
    return len(doomed) - 1


def _expand_to(node: TreeNode[str]) -> None:
    parent = node.parent
    while parent is not None:
        parent.expand()
        parent = parent.parent
