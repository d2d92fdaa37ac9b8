"""story/undo_history.py: the steps behind Draft.undo / redo (the draft's own tests cover them in use)."""

from __future__ import annotations

from storyterm.story.undo_history import UndoHistory, View


def view(text: str, pending: str | None = None, head: str | None = None) -> View:
    return View(text, pending, head)


def test_undo_and_redo_walk_the_views_back_and_forth() -> None:
    history = UndoHistory()
    history.push(view(""), "edit")
    history.push(view("A"), "generate")
    assert (history.undo_label, history.can_redo) == ("generate", False)
    assert history.undo(view("A", "p1")) == view("A")
    assert history.undo(view("A")) == view("")
    assert history.undo(view("")) is None
    assert (history.redo_label, history.undo_steps) == ("edit", 0)
    assert history.redo(view("")) == view("A")
    assert history.redo(view("A")) == view("A", "p1")
    history.push(view("A", "p1"), "accept")
    assert not history.can_redo  # a new step forgets what could be redone


def test_a_run_of_switches_is_one_step_and_anything_else_ends_it() -> None:
    history = UndoHistory()
    history.push_switch(view("A", "p1"), coalesce=True)
    history.push_switch(view("A", "p2"), coalesce=True)
    assert history.undo_steps == 1
    history.push(view("A", "p2"), "accept")
    history.push_switch(view("AB", None, "p2"), coalesce=True)
    assert history.undo_steps == 3
    history.push_switch(view("AC", None, "p3"), coalesce=False)  # a switch of its own
    assert history.undo_steps == 4


def test_rewrite_changes_every_step_and_drop_newest_forgets_one() -> None:
    history = UndoHistory()
    history.push(view("", "gone"), "generate")
    history.push(view("x", None, "gone"), "edit")
    history.drop_newest()
    history.rewrite(lambda v: View(v.text, None if v.pending_id == "gone" else v.pending_id, v.head_id))
    assert history.undo_steps == 1 and history.undo(view("y")) == view("")
