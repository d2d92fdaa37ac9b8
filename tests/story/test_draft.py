"""Draft behaviour: the append-only tree, alternatives at a spot, accept/dismiss/switch, undo/redo."""

from __future__ import annotations

import pytest

from storyterm.engine.errors import StorytermError
from storyterm.engine.settings import DEFAULT_SETTINGS, SamplerSettings
from storyterm.story.draft import Draft, DraftError, DraftFormatError, NewerFormatError


def generate(draft: Draft, text: str, **kwargs) -> object:
    return draft.add_alternative(
        text, genre=kwargs.get("genre", "horror"), settings=kwargs.get("settings", DEFAULT_SETTINGS),
        seed=kwargs.get("seed", 7), model="builtin", stopped=kwargs.get("stopped", False),
    )


def test_new_draft_is_empty() -> None:
    draft = Draft("Night", "horror")
    assert (draft.text, draft.pending, draft.alternatives(), draft.can_undo) == ("", None, [], False)
    assert draft.alternative_index is None


def test_regenerate_adds_a_sibling_and_keeps_the_first() -> None:
    draft = Draft("Night", "horror")
    draft.set_text("The house")
    first = generate(draft, " creaks.")
    second = generate(draft, " burns.")
    assert draft.pending is second
    assert draft.alternatives() == [first, second]
    assert draft.alternative_index == 1
    assert first.parent_id == second.parent_id is None
    assert draft.text == "The house"  # pending is not story text


def test_select_alternative_wraps_and_accept_appends() -> None:
    draft = Draft()
    draft.set_text("Once")
    first = generate(draft, " upon")
    generate(draft, " more")
    assert draft.select_alternative(2) is first  # wraps
    assert draft.select_alternative(-1).text == " more"
    draft.select_alternative(0)
    draft.accept()
    assert draft.text == "Once upon"
    assert draft.pending is None
    assert first.accepted


def test_switch_after_accept_replaces_the_accepted_text() -> None:
    draft = Draft()
    draft.set_text("Once")
    generate(draft, " upon a time")
    other = generate(draft, " more")
    draft.select_alternative(0)
    draft.accept()
    assert draft.alternative_count == 2 and draft.alternative_index == 0
    draft.select_alternative(1)
    assert draft.text == "Once more"
    assert draft.last_accepted is other
    assert draft.alternative_index == 1


def test_switching_takes_keeps_flipping_takes_when_the_other_take_was_continued() -> None:
    # Take B was continued once (a passage generated right after it). Switching the accepted take from A to B must
    # show B as take 2 of 2, and the next switch must go back to A, not bring up B's continuation as pending.
    draft = Draft()
    draft.set_text("Once")
    a = generate(draft, " A.")
    b = generate(draft, " B.")
    draft.accept()
    generate(draft, " Then.")
    draft.set_text("Once")
    draft.select_alternative(0)
    draft.accept()
    assert (draft.last_accepted, draft.alternatives(), draft.alternative_index) == (a, [a, b], 0)
    draft.select_alternative(1)
    assert draft.text == "Once B." and draft.pending is None
    assert (draft.last_accepted, draft.alternatives(), draft.alternative_index) == (b, [a, b], 1)
    draft.select_alternative(2)
    assert draft.text == "Once A." and draft.last_accepted is a


def test_a_dismissed_continuation_of_a_single_take_comes_back_with_a_switch() -> None:
    draft = Draft()
    generate(draft, "It rained.")
    draft.accept()
    then = generate(draft, " Then.")
    draft.dismiss()
    assert (draft.alternatives(), draft.alternative_index) == ([then], None)
    assert draft.select_alternative(0) is then and draft.pending is then


def test_switch_after_accept_is_gone_once_the_writer_types_after_it() -> None:
    draft = Draft()
    draft.set_text("Once")
    generate(draft, " upon")
    generate(draft, " more")
    draft.accept()
    draft.set_text(draft.text + " again")
    assert draft.alternatives() == []
    with pytest.raises(DraftError):
        draft.select_alternative(0)


def test_next_generation_is_a_child_of_the_accepted_passage() -> None:
    draft = Draft()
    first = generate(draft, "It rained.")
    draft.accept()
    draft.set_text(draft.text + " Then")
    child = generate(draft, " it stopped.")
    assert child.parent_id == first.id
    assert draft.children(first.id) == [child]
    # the writer rewrites the accepted sentence: the next take no longer builds on it
    draft.accept()
    draft.set_text("It snowed. Then it stopped.")
    assert generate(draft, " Fin.").parent_id is None


def test_edit_hides_pending_and_returning_to_the_text_brings_alternatives_back() -> None:
    draft = Draft()
    draft.set_text("Dark")
    take = generate(draft, " night")
    draft.set_text("Dark and")
    assert draft.pending is None and draft.alternatives() == []
    draft.set_text("Dark")
    assert draft.alternatives() == [take]
    assert draft.select_alternative(0) is take and draft.pending is take


def test_dismiss_keeps_the_passage() -> None:
    draft = Draft()
    take = generate(draft, "A")
    draft.dismiss()
    assert draft.pending is None
    assert take in draft.passages
    assert draft.alternatives() == [take]
    draft.dismiss()  # nothing pending: no-op, no undo step
    assert draft.undo_label == "dismiss"


def test_accept_without_pending_is_a_clear_error() -> None:
    with pytest.raises(DraftError, match="nothing to accept") as info:
        Draft().accept()
    assert isinstance(info.value, StorytermError)


def test_edits_coalesce_into_one_undo_step() -> None:
    draft = Draft()
    for n in range(1, 6):
        draft.set_text("abcde"[:n])
    assert draft.undo() and draft.text == ""
    assert not draft.can_undo
    assert draft.redo() and draft.text == "abcde"


def test_structural_ops_and_explicit_breaks_split_edit_groups() -> None:
    draft = Draft()
    draft.set_text("a")
    draft.set_text("ab")
    generate(draft, "c")
    draft.accept()
    draft.set_text("abc!")
    draft.break_undo_group()
    draft.set_text("abc!?")
    draft.set_text("abc!??", coalesce=False)
    labels = []
    texts = []
    while draft.can_undo:
        labels.append(draft.undo_label)
        draft.undo()
        texts.append((draft.text, draft.pending.text if draft.pending else None))
    assert labels == ["edit", "edit", "edit", "accept", "generate", "edit"]
    assert texts == [("abc!?", None), ("abc!", None), ("abc", None), ("ab", "c"), ("ab", None), ("", None)]


def test_undo_never_removes_a_passage_and_new_ops_after_undo_keep_it() -> None:
    draft = Draft()
    take = generate(draft, "one")
    draft.undo()
    assert draft.pending is None
    generate(draft, "two")  # clears redo, but the tree keeps "one"
    assert not draft.can_redo
    assert [p.text for p in draft.passages] == ["one", "two"]
    assert take in draft.alternatives()


def test_delete_branch_removes_subtree_and_scrubs_history() -> None:
    draft = Draft()
    root = generate(draft, "A.")
    draft.accept()
    child = generate(draft, " B.")
    assert draft.delete_branch(root.id) == 2
    assert draft.passages == []
    assert draft.pending is None and draft.last_accepted is None
    assert draft.text == "A."  # the story is untouched
    while draft.undo():
        assert draft.pending is None
    with pytest.raises(DraftError):
        draft.delete_branch(child.id)


def test_revision_counts_changes() -> None:
    draft = Draft()
    start = draft.revision
    draft.set_text("x")
    draft.title = "New"
    draft.set_text("x")  # unchanged: no revision
    assert draft.revision == start + 2


def test_to_dict_from_dict_round_trip_with_fixed_key_order() -> None:
    draft = Draft("T", "drama", memory="Ann is a pilot.", settings=SamplerSettings(temperature=0.7, seed=3))
    draft.set_text("Hi")
    generate(draft, " there", stopped=True)
    generate(draft, " you")
    data = draft.to_dict()
    assert list(data)[0] == "format_version"
    again = Draft.from_dict(data)
    assert again.to_dict() == data
    assert again.pending.text == " you" and again.alternative_count == 2
    assert again.settings == draft.settings


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(format_version=99), "newer storyterm"),
        (lambda d: d.update(format_version="1"), "format_version"),
        (lambda d: d.update(format_version=0), "unknown format_version"),
        (lambda d: d.pop("text"), "missing field 'text'"),
        (lambda d: d.update(title=3), "'title' must be a string"),
        (lambda d: d["passages"][0].update(parent_id="nope"), "does not name an earlier passage"),
        (lambda d: d["passages"].append(dict(d["passages"][0])), "used twice"),
        (lambda d: d.update(pending_id="ghost"), "pending_id"),
        (lambda d: d["passages"][0].update(seed=True), "seed"),
        (lambda d: d["passages"][0].update(settings={"x": float("nan")}), "not finite"),
    ],
)
def test_from_dict_names_the_bad_field(mutate, message) -> None:
    draft = Draft()
    generate(draft, "A")
    data = draft.to_dict()
    mutate(data)
    with pytest.raises(DraftFormatError, match=message):
        Draft.from_dict(data)


def test_newer_format_has_its_own_error_type() -> None:
    with pytest.raises(NewerFormatError):
        Draft.from_dict({"format_version": 3})


def test_hand_edited_story_hides_pending_on_load() -> None:
    draft = Draft()
    draft.set_text("Hi")
    take = generate(draft, "!")
    data = draft.to_dict()
    data["text"] = "Hello"
    loaded = Draft.from_dict(data)
    assert loaded.pending is None
    assert [p.id for p in loaded.passages] == [take.id]


def test_undo_history_is_capped_but_the_tree_is_not(monkeypatch) -> None:
    import storyterm.story.undo_history as undo_history

    monkeypatch.setattr(undo_history, "MAX_UNDO_STEPS", 10)
    draft = Draft()
    for n in range(30):
        generate(draft, f"take {n}")
        draft.set_text(draft.text + "x", coalesce=False)
    steps = 0
    while draft.undo():
        steps += 1
    assert steps == 10
    assert len(draft.passages) == 30


def test_text_with_pending_is_what_the_editor_shows() -> None:
    draft = Draft()
    draft.set_text("Hi")
    assert draft.text_with_pending == "Hi"
    generate(draft, " there")
    assert draft.text_with_pending == "Hi there"
    assert draft.text == "Hi"


def test_bad_settings_in_a_file_fall_back_with_a_warning_instead_of_locking_the_story() -> None:
    draft = Draft(settings=SamplerSettings(temperature=0.7, top_k=10))
    draft.set_text("Keep me.")
    data = draft.to_dict()
    data["settings"].update(temperature=-1, top_p="high", unknown_future_key=3)
    loaded = Draft.from_dict(data)
    assert loaded.text == "Keep me."
    assert (loaded.settings.temperature, loaded.settings.top_p, loaded.settings.top_k) == (
        DEFAULT_SETTINGS.temperature, DEFAULT_SETTINGS.top_p, 10)
    assert len(loaded.load_warnings) == 2
    assert any("temperature" in w for w in loaded.load_warnings)
    assert Draft.from_dict(draft.to_dict()).load_warnings == []


def test_whatever_enters_the_tree_can_be_saved_and_loaded() -> None:
    draft = Draft()

    class NumpyLikeInt:
        def __index__(self) -> int:
            return 42

    take = draft.add_alternative("x", genre=None, settings={}, seed=NumpyLikeInt(), model="m")
    assert take.seed == 42 and type(take.seed) is int
    for bad in (
        dict(seed=True),
        dict(settings={"t": float("nan")}),
        dict(settings={"t": object()}),
        dict(model=None),
        dict(genre=3),
    ):
        arguments = dict(genre=None, settings={}, seed=None, model="m") | bad
        with pytest.raises(TypeError):
            draft.add_alternative("y", **arguments)
    with pytest.raises(TypeError):
        draft.add_alternative(None, genre=None, settings={}, seed=None, model="m")
    with pytest.raises(TypeError):
        draft.set_text(None)
    with pytest.raises(TypeError):
        draft.title = None
    with pytest.raises(TypeError):
        draft.settings = {"temperature": 1}
    assert [p.text for p in draft.passages] == ["x"]
    assert Draft.from_dict(draft.to_dict()).to_dict() == draft.to_dict()


def test_browsing_alternatives_is_one_undo_step_that_never_buries_an_edit() -> None:
    draft = Draft()
    draft.set_text("Once")
    draft.break_undo_group()
    generate(draft, " upon")
    generate(draft, " more")
    generate(draft, " again")
    steps_before = draft._history.undo_steps
    for index in (0, 1, 0, 2, 1):
        draft.select_alternative(index)
    assert draft._history.undo_steps == steps_before + 1
    assert draft.pending.text == " more"
    assert draft.undo() and draft.pending.text == " again"  # back to before the browsing, in one step
    assert draft.undo_label == "generate"
    assert draft.redo() and draft.pending.text == " more"


def test_a_switch_after_other_steps_starts_a_new_browsing_step() -> None:
    draft = Draft()
    draft.set_text("Once")
    generate(draft, " upon")
    generate(draft, " more")
    draft.select_alternative(0)
    draft.accept()
    draft.select_alternative(1)  # at the accepted spot: replaces the accepted text
    assert draft.text == "Once more"
    assert draft.undo() and draft.text == "Once upon"
    assert draft.undo_label == "accept"


def test_regenerate_start_is_where_the_last_accepted_passage_began_while_it_ends_the_story() -> None:
    draft = Draft("Night", "horror")
    draft.set_text("The house")
    generate(draft, " creaks.")
    assert draft.regenerate_start is None  # pending: a regenerate is a sibling at the end
    draft.accept()
    assert draft.regenerate_start == len("The house")
    draft.set_text("The house creaks. Then")
    assert draft.regenerate_start is None  # edited after it
    draft.set_text("The house creaks.")
    assert draft.regenerate_start == len("The house")  # back where it was
    generate(draft, " It sighs.")
    draft.dismiss()
    assert draft.regenerate_start is None  # something else was generated at the end
