"""The story tree from the editor: open it, and carry out what the writer chose there (make a branch the story,
or continue from it). A mixin of ``StorytermApp``; the tree's data is ``storyterm.story.tree``, the screen is
``tui/screens/story_tree.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storyterm.story.draft import DraftError
from storyterm.story.tree import go_to

if TYPE_CHECKING:
    from storyterm.tui.app import StorytermApp
    from storyterm.tui.screens.story_tree import TreeChoice

    _Base = StorytermApp
else:
    _Base = object


class StoryTreeActions(_Base):
    def action_story_tree(self) -> None:
        from storyterm.tui.screens.story_tree import StoryTreeScreen

        self.push_screen(StoryTreeScreen(self.draft, on_change=self._tree_pruned), self._tree_chosen)

    def _tree_pruned(self) -> None:
        """A branch was deleted: a pending passage in it is gone from the editor too; save at once."""
        self._refresh_editor()
        self._story_changed()

    def _tree_chosen(self, choice: TreeChoice | None) -> None:
        if choice is None:
            return
        verb, passage_id = choice
        try:
            go_to(self.draft, passage_id)
        except DraftError as error:
            self.notify(str(error), title="Not changed", severity="error", timeout=8)
            return
        self._refresh_editor()
        self.editor.move_cursor(self.editor.document.end)
        self.editor.focus()
        self._story_changed()
        if verb == "continue":
            self.action_generate()
        else:
            self.notify("The story now ends with that passage; ctrl+z returns to where you were.", timeout=4)
