"""The story tree: layout (every passage once, the current story as the top line), paths, rebuilt branch texts,
going to a node (undoable; new passages hang under it), lead-ins saved once and old drafts still readable."""

from __future__ import annotations

import pytest

from storyterm.engine.settings import DEFAULT_SETTINGS
from storyterm.story.draft import Draft, DraftError
from storyterm.story.tree import (
    TreeEntry,
    current_path,
    first_words,
    go_to,
    path_to,
    story_before,
    story_through,
    tree_layout,
)


def generate(draft: Draft, text: str):
    return draft.add_alternative(text, genre=None, settings=DEFAULT_SETTINGS, seed=1, model="tiny")


def flatten(entries: list[TreeEntry], depth: int = 0) -> list[tuple[int, str]]:
    rows = []
    for entry in entries:
        rows.append((depth, entry.passage.text))
        rows.extend(flatten(entry.nested, depth + 1))
    return rows


@pytest.fixture
def branched() -> tuple[Draft, dict]:
    """Opening; takes A1/A2 at the first spot; A1 accepted and continued with B1/B2; B1 accepted; then the writer
    types a sentence and generates C. A2 was later continued too (A2, the writer's aside, D)."""
    draft = Draft()
    draft.set_text("Opening.")
    a1 = generate(draft, " A one.")
    a2 = generate(draft, " A two.")
    draft.select_alternative(0)
    draft.accept()
    b1 = generate(draft, " B one.")
    b2 = generate(draft, " B two.")
    draft.select_alternative(0)
    draft.accept()
    draft.set_text(draft.text + " Typed.")
    c = generate(draft, " C.")
    draft.accept()
    # Go back to A2, type a little and continue it.
    go_to(draft, a2.id)
    draft.set_text(draft.text + " Aside.")
    d = generate(draft, " D.")
    go_to(draft, c.id)
    return draft, {"a1": a1, "a2": a2, "b1": b1, "b2": b2, "c": c, "d": d}


def test_the_current_story_is_the_top_line_and_every_passage_appears_once(branched) -> None:
    draft, p = branched
    layout = tree_layout(draft)
    assert [e.passage.id for e in layout] == [p["a1"].id, p["b1"].id, p["c"].id]
    assert all(e.on_path for e in layout)
    assert flatten(layout) == [
        (0, " A one."), (1, " A two."), (2, " D."),   # the other take, and what followed it
        (0, " B one."), (1, " B two."),
        (0, " C."),
    ]
    a2 = layout[0].nested[0]
    assert a2.continues_line and not a2.on_path and a2.takes == 2
    assert not layout[1].nested[0].continues_line
    assert sorted(text for _, text in flatten(layout)) == sorted(q.text for q in draft.passages)


def test_the_layout_follows_the_story_when_it_moves_to_another_branch(branched) -> None:
    draft, p = branched
    go_to(draft, p["d"].id)
    layout = tree_layout(draft)
    assert [e.passage.text for e in layout] == [" A two.", " D."]
    assert flatten(layout)[:4] == [(0, " A two."), (1, " A one."), (2, " B one."), (3, " B two.")]


def test_paths_and_branch_texts_are_rebuilt_exactly(branched) -> None:
    draft, p = branched
    assert [q.id for q in path_to(draft, p["c"].id)] == [p["a1"].id, p["b1"].id, p["c"].id]
    assert [q.id for q in current_path(draft)] == [p["a1"].id, p["b1"].id, p["c"].id]
    assert story_before(draft, p["a2"].id) == "Opening."
    assert story_through(draft, p["b2"].id) == "Opening. A one. B two."
    assert story_through(draft, p["c"].id) == "Opening. A one. B one. Typed. C."  # the writer's words kept
    assert story_through(draft, p["d"].id) == "Opening. A two. Aside. D."


def test_go_to_makes_the_path_the_story_undo_returns_and_new_passages_hang_under_it(branched) -> None:
    draft, p = branched
    draft.set_text(draft.text + " More typing.")
    before = draft.text
    go_to(draft, p["b2"].id)
    assert draft.text == "Opening. A one. B two."
    assert draft.pending is None and draft.last_accepted is p["b2"] and p["b2"].accepted
    assert [q.id for q in current_path(draft)] == [p["a1"].id, p["b2"].id]
    assert draft.alternatives() == [p["b1"], p["b2"]]  # f7/f8 still cycle the takes at that spot
    assert draft.undo_label == "go to"
    draft.undo()
    assert draft.text == before
    draft.redo()
    new = generate(draft, " E.")
    assert new.parent_id == p["b2"].id
    assert story_through(draft, new.id) == "Opening. A one. B two. E."


def test_go_to_the_pending_passage_accepts_it() -> None:
    draft = Draft()
    draft.set_text("Hi.")
    take = generate(draft, " There.")
    go_to(draft, take.id)
    assert (draft.text, draft.pending, draft.last_accepted) == ("Hi. There.", None, take)


def test_the_pending_passage_ends_the_current_path() -> None:
    draft = Draft()
    draft.set_text("Hi.")
    first = generate(draft, " One.")
    draft.accept()
    pending = generate(draft, " Two.")
    assert [q.id for q in current_path(draft)] == [first.id, pending.id]
    draft.set_text("Rewritten from the start.")
    assert current_path(draft) == []  # the story has left the tree
    assert [e.on_path for e in tree_layout(draft)] == [False, False]


def test_make_current_refuses_a_story_the_passage_did_not_continue() -> None:
    draft = Draft()
    draft.set_text("Hi.")
    take = generate(draft, " There.")
    with pytest.raises(DraftError):
        draft.make_current(take.id, "Hello.")
    assert draft.text == "Hi." and not draft.can_redo


def test_lead_ins_survive_saving_and_are_written_once_per_spot() -> None:
    draft = Draft()
    opening = "A long opening. " * 50
    draft.set_text(opening)
    takes = [generate(draft, f" Take {n}.") for n in range(5)]
    data = draft.to_dict()
    assert sum("lead_in" in raw for raw in data["passages"]) == 1
    again = Draft.from_dict(data)
    assert again.to_dict() == data
    assert [again.passage(t.id).lead_in for t in takes] == [opening] * 5
    assert [flatten(tree_layout(again))] == [flatten(tree_layout(draft))]
    assert story_through(again, takes[3].id) == opening + " Take 3."


def test_a_draft_written_before_lead_ins_loads_and_rebuilds_what_it_can(branched) -> None:
    draft, p = branched
    data = draft.to_dict()
    for raw in data["passages"]:
        raw.pop("lead_in", None)
    old = Draft.from_dict(data)
    assert old.text == draft.text
    # The story's own path and passages generated right after their parent are rebuilt; the rest is unknown.
    assert story_through(old, p["c"].id) == draft.text
    assert story_through(old, p["b2"].id) == "Opening. A one. B two."
    assert story_before(old, p["a2"].id) == "Opening."
    assert story_before(old, p["d"].id) is None  # the aside typed before it was never kept
    with pytest.raises(DraftError, match="older storyterm"):
        go_to(old, p["d"].id)
    assert old.text == draft.text


def test_delete_branch_takes_its_nested_takes_out_of_the_layout(branched) -> None:
    draft, p = branched
    draft.delete_branch(p["a2"].id)
    assert " D." not in [text for _, text in flatten(tree_layout(draft))]
    assert len(flatten(tree_layout(draft))) == len(draft.passages) == 4


def test_a_long_story_is_one_flat_line() -> None:
    draft = Draft()
    draft.set_text("Start.")
    for n in range(300):
        generate(draft, f" Spare {n}.")
        generate(draft, f" Kept {n}.")
        draft.accept()
    layout = tree_layout(draft)
    assert len(layout) == 300 and all(len(e.nested) == 1 and not e.nested[0].nested for e in layout)
    assert story_through(draft, layout[-1].nested[0].passage.id).endswith("Kept 298. Spare 299.")


@pytest.mark.parametrize(
    "text, width, expected",
    [
        ("  The ghost\n drifts  ", 40, "The ghost drifts"),
        ("The ghost drifts through the hall", 20, "The ghost drifts…"),
        ("Supercalifragilistic", 8, "Superca…"),
        ("", 10, ""),
    ],
)
def test_first_words(text, width, expected) -> None:
    assert first_words(text, width) == expected
    assert len(first_words(text, width)) <= width


def test_a_wrong_lead_in_is_caught_by_the_digest(branched) -> None:
    draft, p = branched
    c = p["c"]
    c.lead_in = " Tyxed."  # same length, other words (a hand-edited file)
    assert story_before(draft, c.id) == "Opening. A one. B one. Typed."  # the story's own text, checked
    p["d"].lead_in = " Asidx."
    assert story_before(draft, p["d"].id) is None  # nothing else holds the writer's words before D
