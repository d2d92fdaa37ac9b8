"""The story editor: a TextArea whose document ends with the pending passage, drawn as dim italic ghost text.

Why not ``TextArea.suggestion``: it is spliced into the cursor's line at render time, outside the document, so
a long passage is neither soft-wrapped nor scrollable. Here the pending text is real document text (wrapping,
scrolling and selection just work) and ``get_line`` styles its range. The invariant is
``editor.text == story + pending_text``; ``story_text`` gives the story without the pending passage, which is
all the Draft ever receives.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager

from rich.style import Style
from rich.text import Text
from textual.document._document import Location
from textual.document._edit import Edit
from textual.document._edit import EditResult
from textual.document._wrapped_document import WrappedDocument
from textual.message import Message
from textual.strip import Strip
from textual.widgets import TextArea

from storyterm.tui.text_form import editor_form

# Probability view tints, likeliest last (tui/token_view.py picks one per token).
SHADES = ("story-editor--prob-rare", "story-editor--prob-low", "story-editor--prob-mid")


def common_prefix_length(a: str, b: str) -> int:
    """How many leading characters ``a`` and ``b`` share: slice comparisons (memcmp) in a binary search, since a
    character loop costs ~100 ms on a 1 MB story and the usual case (the end changed) is one ``startswith``."""
    if b.startswith(a):
        return len(a)
    if a.startswith(b):
        return len(b)
    low, high = 0, min(len(a), len(b))  # a[:low] == b[:low]; a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle
    return low


class _RowCountedWrappedDocument(WrappedDocument):
    """Textual's ``height`` sums over every line of the document, and the TextArea asks for it for every row it
    draws: O(story) per row. The row table it keeps has exactly one entry per row, so its length is the height."""

    @property
    def height(self) -> int:
        return len(self._offset_to_line_info)


class StoryEditor(TextArea):
    COMPONENT_CLASSES = TextArea.COMPONENT_CLASSES | {"story-editor--pending", *SHADES}

    DEFAULT_CSS = """
    StoryEditor .story-editor--pending {
        color: $text-muted;
        text-style: italic;
    }
    StoryEditor.-generating {
        border: tall $accent;
    }
    /* The probability view (tui/token_view.py): the less likely a generated token was, the stronger its tint. */
    StoryEditor .story-editor--prob-mid {
        background: $primary 20%;
    }
    StoryEditor .story-editor--prob-low {
        background: $warning 35%;
    }
    StoryEditor .story-editor--prob-rare {
        background: $error 55%;
    }
    """

    class PendingDismissedByEdit(Message):
        """The writer typed while a pending passage was shown: it was taken out of the editor."""

    class UndoRequested(Message):
        pass

    class RedoRequested(Message):
        pass

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("soft_wrap", True)
        kwargs.setdefault("tab_behavior", "focus")
        # The cursor-line highlight restyles the whole line after get_line and would paint the pending passage
        # (which shares the story's last line) in the story's colour; a paragraph is one line here anyway.
        kwargs.setdefault("highlight_cursor_line", False)
        self._drawing_row = False  # see render_line; set first: TextArea's own __init__ may read text
        super().__init__(*args, **kwargs)
        self._pending_text = ""
        self._programmatic = 0
        self._shading: dict[int, list[tuple[int, int, str]]] = {}  # row → (start column, end column, shade)

    @property  # type: ignore[override]
    def wrapped_document(self) -> WrappedDocument:
        return self._wrapped_document

    @wrapped_document.setter
    def wrapped_document(self, document: WrappedDocument) -> None:
        if type(document) is WrappedDocument:
            document.__class__ = _RowCountedWrappedDocument
        self._wrapped_document = document

    # -- what the rest of the app uses -------------------------------------------------------------------------

    @property
    def pending_text(self) -> str:
        return self._pending_text

    @property
    def story_text(self) -> str:
        text = self.text
        return text[: len(text) - len(self._pending_text)] if self._pending_text else text

    @property
    def pending_start(self) -> Location:
        """Where the pending passage begins, from the document's end: O(passage), not O(story) (every drawn
        line asks)."""
        pending = self._pending_text
        end_row, end_column = self.document.end
        breaks = pending.count("\n")
        if not breaks:
            return (end_row, end_column - len(pending))
        start_row = end_row - breaks
        return (start_row, len(self.document.get_line(start_row)) - pending.index("\n"))

    def show(self, story: str, pending: str = "") -> None:
        """Make the editor show ``story`` followed by the pending passage, with the smallest edit (cursor and
        scroll stay put when only the end changes)."""
        story, pending = editor_form(story), editor_form(pending)
        new_text = story + pending
        old_text = self.text
        common = common_prefix_length(old_text, new_text)
        self._pending_text = pending
        if common == len(old_text) == len(new_text):
            self._restyle()
            return
        start = self.document.get_location_from_index(common)
        with self._as_program():
            self.replace(new_text[common:], start, self.document.end, maintain_selection_offset=False)
            if self.selection.end > self.document.end:
                self.move_cursor(self.document.end)

    def append_pending(self, piece: str) -> None:
        """A streamed piece: it joins the pending passage at the end of the document."""
        piece = editor_form(piece)
        if not piece:
            return
        self._pending_text += piece
        with self._as_program():
            self.insert(piece, self.document.end, maintain_selection_offset=True)
        self.scroll_cursor_into_view_if_at_end()

    def scroll_cursor_into_view_if_at_end(self) -> None:
        self.scroll_end(animate=False, immediate=False)

    def accept_pending(self) -> None:
        """The pending passage became story text: same characters, ordinary style, cursor after it."""
        self._pending_text = ""
        self._restyle()
        self.move_cursor(self.document.end)

    def set_generating(self, generating: bool) -> None:
        # Read-only while a passage streams in, so no keystroke can land inside it.
        self.read_only = generating
        self.set_class(generating, "-generating")

    # -- TextArea hooks ----------------------------------------------------------------------------------------

    def edit(self, edit: Edit) -> EditResult:
        if self._programmatic or not self._pending_text:
            return super().edit(edit)
        # The writer edits while a passage is pending: take the passage out first (like an editor's inline
        # suggestion), then apply the edit, clamped to the story.
        pending_start = self.pending_start
        self._pending_text = ""
        with self._as_program():
            super().edit(Edit("", pending_start, self.document.end, True))
        self.post_message(self.PendingDismissedByEdit())
        edit.from_location = min(edit.from_location, pending_start)
        edit.to_location = min(edit.to_location, pending_start)
        return super().edit(edit)

    def render_line(self, y: int) -> Strip:
        # Textual reads `self.text` (a join of the whole document) on every drawn row, only to test whether the
        # document is empty for the placeholder: O(story) per row. While a row is drawn, `text` answers that
        # test in O(1) (see `text`); nothing else in the row drawing reads it.
        self._drawing_row = True
        try:
            return super().render_line(y)
        finally:
            self._drawing_row = False

    @property  # type: ignore[override]
    def text(self) -> str:
        if self._drawing_row:
            return "" if self._is_empty() else "\n"  # only its truth value is used there
        return self.document.text

    @text.setter
    def text(self, value: str) -> None:
        TextArea.text.fset(self, value)  # type: ignore[attr-defined]

    def _is_empty(self) -> bool:
        return self.document.line_count == 1 and not self.document.get_line(0)

    def set_shading(self, spans: list[tuple[int, int, str]]) -> None:
        """Tint document ranges (start index, end index, one of SHADES); an empty list clears the tints."""
        rows: dict[int, list[tuple[int, int, str]]] = {}
        # Row starts once, then a bisect per span (Document.get_location_from_index joins the whole text per call).
        starts, position, newline = [], 0, len(self.document.newline)
        for row in range(self.document.line_count if spans else 0):
            starts.append(position)
            position += len(self.document[row]) + newline
        for start, end, shade in spans:
            if not 0 <= start < end <= position - newline:
                continue
            row_a = bisect_right(starts, start) - 1
            row_b = bisect_right(starts, end) - 1
            col_a, col_b = start - starts[row_a], end - starts[row_b]
            for row in range(row_a, row_b + 1):
                rows.setdefault(row, []).append((col_a if row == row_a else 0,
                                                 col_b if row == row_b else len(self.document[row]), shade))
        if rows or self._shading:
            self._shading = rows
            self._restyle()

    def get_line(self, line_index: int) -> Text:
        line = super().get_line(line_index)
        if self._pending_text:
            start_row, start_column = self.pending_start
            if line_index > start_row:
                line.stylize(self._pending_style())
            elif line_index == start_row:
                line.stylize(self._pending_style(), start_column)
        for start, end, shade in self._shading.get(line_index, ()):  # after the pending style: it sets a background
            line.stylize(self._shade_style(shade), start, end)
        return line

    def _shade_style(self, shade: str) -> Style:
        """The tint laid over the editor's own background (a Rich style would drop the CSS colour's alpha and
        paint it at full strength), so it reads in dark and light themes alike."""
        tint = self.get_component_styles(shade).background
        return Style(bgcolor=(self.background_colors[1] + tint).rich_color)

    def _pending_style(self) -> Style:
        style = self.get_component_rich_style("story-editor--pending")
        if style.color == self.rich_style.color:
            # ANSI themes use the terminal's own colours, so "muted" is the same colour: dim it instead.
            style += Style(dim=True)
        return style

    def action_undo(self) -> None:
        # Undo goes through the Draft (it knows about accepts and alternatives), not TextArea's own history.
        self.post_message(self.UndoRequested())

    def action_redo(self) -> None:
        self.post_message(self.RedoRequested())

    # -- helpers -----------------------------------------------------------------------------------------------

    def _restyle(self) -> None:
        self._line_cache.clear()
        self.refresh()

    @contextmanager
    def _as_program(self) -> Iterator[None]:
        self._programmatic += 1
        try:
            yield
        finally:
            self._programmatic -= 1
