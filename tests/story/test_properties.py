"""Property tests: random operation sequences keep the draft's invariants; save → load round-trips exactly."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from storyterm.engine.settings import DEFAULT_SETTINGS, SamplerSettings
from storyterm.story.draft import Draft
from storyterm.story.draft_bytes import encode_draft, parse_draft

# A tiny alphabet so that edits often return to an earlier text (the same spot) and alternatives collide.
small_text = st.text(alphabet="ab .", max_size=3)


def view(draft: Draft) -> tuple:
    return (draft.text, draft.pending.id if draft.pending else None,
            draft.last_accepted.id if draft.last_accepted else None)


class DraftMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.draft = Draft("Prop", "drama")
        self.generated: set[str] = set()
        self.deleted: set[str] = set()
        self.initial_view = view(self.draft)

    @rule(suffix=small_text)
    def type_at_end(self, suffix: str) -> None:
        self.draft.set_text(self.draft.text + suffix)

    @rule(keep=st.integers(min_value=0, max_value=6), coalesce=st.booleans())
    def delete_from_end(self, keep: int, coalesce: bool) -> None:
        self.draft.set_text(self.draft.text[:keep], coalesce=coalesce)

    @rule(text=small_text, stopped=st.booleans(), seed=st.none() | st.integers(0, 2**32 - 1))
    def generate(self, text: str, stopped: bool, seed: int | None) -> None:
        before = self.draft.text
        passage = self.draft.add_alternative(
            text, genre="drama", settings=SamplerSettings(seed=seed), seed=seed, model="m", stopped=stopped
        )
        self.generated.add(passage.id)
        assert self.draft.pending is passage
        assert self.draft.text == before
        assert passage in self.draft.alternatives()

    @precondition(lambda self: self.draft.pending is not None)
    @rule()
    def accept(self) -> None:
        expected = self.draft.text + self.draft.pending.text
        accepted = self.draft.pending
        self.draft.accept()
        assert self.draft.text == expected
        assert self.draft.last_accepted is accepted and accepted.accepted

    @rule()
    def dismiss(self) -> None:
        self.draft.dismiss()
        assert self.draft.pending is None

    @precondition(lambda self: self.draft.alternative_count > 0)
    @rule(index=st.integers(-5, 5))
    def select(self, index: int) -> None:
        alternatives = self.draft.alternatives()
        chosen = self.draft.select_alternative(index)
        assert chosen is alternatives[index % len(alternatives)]
        assert self.draft.alternatives()[self.draft.alternative_index] is chosen

    @rule()
    def undo(self) -> None:
        before = view(self.draft)
        if self.draft.undo():
            assert self.draft.redo()
            assert view(self.draft) == before  # one step back and forth is the identity
            self.draft.undo()

    @rule()
    def redo(self) -> None:
        self.draft.redo()

    @precondition(lambda self: bool(self.draft.passages))
    @rule(data=st.data())
    def delete_branch(self, data: st.DataObject) -> None:
        passage = data.draw(st.sampled_from(self.draft.passages))
        before = {p.id for p in self.draft.passages}
        text = self.draft.text
        removed = self.draft.delete_branch(passage.id)
        after = {p.id for p in self.draft.passages}
        assert passage.id not in after and len(before - after) == removed
        assert self.draft.text == text
        self.deleted |= before - after

    @invariant()
    def no_generated_passage_is_lost(self) -> None:
        ids = {p.id for p in self.draft.passages}
        assert self.generated - self.deleted <= ids
        assert ids <= self.generated

    @invariant()
    def pending_continues_the_story(self) -> None:
        pending = self.draft.pending
        if pending is not None:
            assert pending.continues(self.draft.text)
            assert pending in self.draft.alternatives()

    @invariant()
    def references_are_valid(self) -> None:
        ids = {p.id for p in self.draft.passages}
        head = self.draft.last_accepted
        assert head is None or head.id in ids
        for passage in self.draft.passages:
            assert passage.parent_id is None or passage.parent_id in ids

    @invariant()
    def undo_all_then_redo_all_is_the_identity(self) -> None:
        before = view(self.draft)
        steps = 0
        while self.draft.undo():
            steps += 1
        if not self.deleted:
            assert view(self.draft) == self.initial_view
        for _ in range(steps):
            assert self.draft.redo()
        assert view(self.draft) == before
        # and the other way: redo everything still pending, then undo as many steps
        redone = 0
        while self.draft.redo():
            redone += 1
        for _ in range(redone):
            assert self.draft.undo()
        assert view(self.draft) == before

    @invariant()
    def file_round_trip_is_exact(self) -> None:
        data = self.draft.to_dict()
        loaded = parse_draft(encode_draft(self.draft))
        assert loaded.to_dict() == data
        assert [p.id for p in loaded.alternatives()] == [p.id for p in self.draft.alternatives()]


TestDraftMachine = DraftMachine.TestCase
# STORYTERM_PROPERTY_EXAMPLES=2000 for a long run; the default keeps the suite fast.
EXAMPLES = int(os.environ.get("STORYTERM_PROPERTY_EXAMPLES", "60"))
TestDraftMachine.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
any_text = st.text(max_size=40)


@settings(max_examples=80, deadline=None)
@given(
    title=any_text,
    genre=st.none() | st.sampled_from(["horror", "sci_fi", "drama"]),
    memory=any_text,
    story=any_text,
    takes=st.lists(
        st.tuples(any_text, st.booleans(), st.dictionaries(st.text(max_size=5), json_scalars, max_size=3)),
        max_size=5,
    ),
    settings_=st.builds(SamplerSettings, temperature=st.floats(0.1, 5), top_k=st.integers(0, 100),
                        seed=st.none() | st.integers(0, 2**32 - 1)),
    accept_first=st.booleans(),
)
def test_save_load_round_trips_every_draft(title, genre, memory, story, takes, settings_, accept_first) -> None:
    draft = Draft(title, genre, memory=memory, settings=settings_)
    draft.set_text(story)
    for index, (text, stopped, extra_settings) in enumerate(takes):
        draft.add_alternative(text, genre=genre, settings=extra_settings or DEFAULT_SETTINGS, seed=index,
                              model="builtin", stopped=stopped)
        if accept_first and index == 0:
            draft.accept()
    loaded = parse_draft(encode_draft(draft))
    assert loaded.to_dict() == draft.to_dict()
    assert loaded.text == draft.text and loaded.title == draft.title and loaded.settings == draft.settings
    assert encode_draft(loaded) == encode_draft(draft)  # byte-stable: same draft, same file
