"""The draft's context from the editor (issue 16): the lorebook editor, the author's note / banned words / stop
sequences form, and the context viewer (exactly what the model reads next, part by part).

A mixin of ``StorytermApp``: the fields live in ``Draft.context`` (story/draft_context.py) and reach the engine
through ``current_request``; the prompt itself is built by the engine (engine/prompt_builder.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storyterm.engine.errors import StorytermError
from storyterm.story.draft_context import DraftContext
from storyterm.tui.screens.context_viewer import ContextView, ViewedPart

if TYPE_CHECKING:
    from storyterm.engine.lorebook import Lorebook
    from storyterm.tui.app import StorytermApp

    _Base = StorytermApp
else:
    _Base = object


class ContextActions(_Base):
    def action_lorebook(self) -> None:
        from storyterm.tui.screens.lorebook import LorebookScreen

        self.push_screen(LorebookScreen(self.draft.context.lorebook), self._lorebook_edited)

    def _lorebook_edited(self, lorebook: Lorebook | None) -> None:
        if lorebook is None or lorebook == self.draft.context.lorebook:
            return
        self.draft.context = self.draft.context.with_changes(lorebook=lorebook)
        self._story_changed()
        count = len(lorebook.entries)
        self.notify(f"Lorebook saved with the draft: {count} entr{'y' if count == 1 else 'ies'}.", timeout=3)

    def action_story_context(self) -> None:
        from storyterm.tui.screens.story_context import StoryContextScreen

        self.push_screen(StoryContextScreen(self.draft.context), self._story_context_edited)

    def _story_context_edited(self, context: DraftContext | None) -> None:
        if context is None or context == self.draft.context:
            return
        self.draft.context = context
        self._story_changed()
        self.notify("Author's note, banned words and stops saved with the draft.", timeout=3)

    def action_context_viewer(self) -> None:
        from storyterm.tui.screens.context_viewer import ContextViewerScreen

        if self.engine is None:
            self.notify("The model is not loaded yet: the context depends on its tokenizer.", severity="warning")
            return
        try:
            view = self.context_view()
        except StorytermError as error:
            self.notify(str(error), title="No context", severity="error")
            return
        self.push_screen(ContextViewerScreen(view, close_keys=self.config.keys.get("context_viewer", "")))

    def context_view(self) -> ContextView:
        """The next passage's prompt, part by part, decoded exactly as the model reads it."""
        from storyterm.engine.prompt_builder import decode_ids

        assert self.engine is not None
        request = self.current_request()
        self.engine.validate(request)
        prepared = self.engine.prepare(request)
        tokenizer = self.engine.loaded.tokenizer
        parts = tuple(ViewedPart(part.kind, part.label, part.tokens, decode_ids(tokenizer, part.token_ids))
                      for part in prepared.parts)
        return ContextView(parts, len(prepared.input_ids), self.engine.loaded.context_window,
                           request.settings.max_new_tokens, prepared.left_out, prepared.warnings)
