"""The draft's undo and redo: a stack of views (story text, pending passage, last accepted passage).

Nodes of the tree are not part of a view, so undo can never remove one. Consecutive edits coalesce into one step
while ``coalescing`` is on, and a run of alternative switches is one step (``push_switch``), so browsing
alternatives never buries the writer's edits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MAX_UNDO_STEPS = 500


@dataclass(frozen=True)
class View:
    """What undo/redo restore."""

    text: str
    pending_id: str | None
    head_id: str | None


@dataclass(frozen=True)
class _Step:
    view: View
    label: str


class UndoHistory:
    """Undo and redo steps, each the view before an operation and the operation's name ("edit", "accept"…)."""

    def __init__(self) -> None:
        self._undo: list[_Step] = []
        self._redo: list[_Step] = []
        # True while the newest undo step is a run of alternative switches with nothing else in between.
        self._browsing = False
        # True while the writer's edits go into the newest step (``Draft.set_text`` with coalesce).
        self.coalescing = False

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_label(self) -> str | None:
        return self._undo[-1].label if self._undo else None

    @property
    def redo_label(self) -> str | None:
        return self._redo[-1].label if self._redo else None

    @property
    def undo_steps(self) -> int:
        return len(self._undo)

    def push(self, before: View, label: str) -> None:
        """A new step: ``before`` is the view the operation ``label`` is about to change."""
        self._browsing = False
        self._undo.append(_Step(before, label))
        if len(self._undo) > MAX_UNDO_STEPS:
            del self._undo[: len(self._undo) - MAX_UNDO_STEPS]  # oldest view only; the tree keeps every passage
        self._redo.clear()
        self.coalescing = False

    def push_switch(self, before: View, coalesce: bool) -> None:
        """An alternative switch: joins the switches right before it when ``coalesce``."""
        if coalesce and self._browsing and self._undo and self._undo[-1].label == "switch":
            self._redo.clear()
            return
        self.push(before, "switch")
        self._browsing = coalesce

    def drop_newest(self) -> None:
        """Forget the newest step (an operation made of two, such as a token swap, is one step)."""
        self._undo.pop()

    def undo(self, current: View) -> View | None:
        """The view to go back to (``current`` becomes a redo step); None when there is nothing to undo."""
        return self._move(self._undo, self._redo, current)

    def redo(self, current: View) -> View | None:
        return self._move(self._redo, self._undo, current)

    def rewrite(self, change: Callable[[View], View]) -> None:
        """Every step's view through ``change`` (a deleted branch leaves no step pointing into it)."""
        self._undo = [_Step(change(s.view), s.label) for s in self._undo]
        self._redo = [_Step(change(s.view), s.label) for s in self._redo]
        self.end_groups()

    def end_groups(self) -> None:
        """The next edit or switch starts a step of its own."""
        self.coalescing = False
        self._browsing = False

    def _move(self, source: list[_Step], target: list[_Step], current: View) -> View | None:
        if not source:
            return None
        step = source.pop()
        target.append(_Step(current, step.label))
        self.end_groups()
        return step.view
