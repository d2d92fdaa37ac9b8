"""The row that holds genre picker | editor | parameter panel, and focus mode: the side panels hidden so the story
gets the whole width. Below FOCUS_MODE_BELOW columns focus mode is on by itself; the focus-mode key overrides
that until the writer presses it again at another size."""

from __future__ import annotations

from textual import events
from textual.containers import Horizontal

# Narrower than this, the panels (about 50 columns) would leave the story too little room: 80 columns in focus
# mode show a 70-character line on one row.
FOCUS_MODE_BELOW = 100
SIDE_PANELS = ("#genre-picker", "#parameters")
# The empty editor's hint: in focus mode the starters are out of sight, so it says how to bring them back.
PLACEHOLDER_WITH_PANELS = "Type the start of a story, or pick a starter — then ctrl+g."
PLACEHOLDER_IN_FOCUS_MODE = "Type the start of a story — then ctrl+g. Genres and starters: f3."


class MainLayout(Horizontal):
    def __init__(self, *children, **kwargs) -> None:
        super().__init__(*children, **kwargs)
        self.panels_wanted: bool | None = None   # None: follow the width; else the writer's choice
        self._chosen_at_width: int | None = None

    @property
    def focus_mode(self) -> bool:
        return self.has_class("-focus")

    def toggle(self) -> None:
        """The writer's key: flip what is shown now, and keep it while the terminal stays this wide."""
        self.panels_wanted = self.focus_mode
        self._chosen_at_width = self.app.size.width
        self._apply()

    def on_mount(self) -> None:
        self._apply()  # before the first frame: an editor squeezed to no width cannot even draw its placeholder

    def on_resize(self, event: events.Resize) -> None:
        self._apply()

    def _apply(self) -> None:
        width = self.app.size.width
        if self.panels_wanted is not None and width != self._chosen_at_width:
            # A different terminal size: back to automatic, unless the choice still agrees with it.
            crossed = (width < FOCUS_MODE_BELOW) != (self._chosen_at_width or 0) < FOCUS_MODE_BELOW
            if crossed:
                self.panels_wanted = None
            self._chosen_at_width = width
        show = self.panels_wanted if self.panels_wanted is not None else width >= FOCUS_MODE_BELOW
        self.set_class(not show, "-focus")
        self.query_one("#editor").placeholder = PLACEHOLDER_WITH_PANELS if show else PLACEHOLDER_IN_FOCUS_MODE
        if not show:
            focused = self.app.focused
            panels = [self.query_one(selector) for selector in SIDE_PANELS]
            if focused is not None and any(focused is p or p in focused.ancestors for p in panels):
                self.query_one("#editor").focus()
