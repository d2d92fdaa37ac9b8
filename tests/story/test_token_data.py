"""Token probabilities stored with their passage (story/token_data.py) and token swaps in the draft tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyterm.engine.settings import DEFAULT_SETTINGS
from storyterm.engine.token_probs import Candidate, TokenInfo
from storyterm.story.draft import Draft, DraftError
from storyterm.story.store import load_draft, save_draft
from storyterm.story.token_data import decode_tokens, encode_tokens


def _tokens(*pieces: str) -> tuple[TokenInfo, ...]:
    return tuple(
        TokenInfo(i, piece, 0.5 / (i + 1), 0.25 / (i + 1),
                  (Candidate(i, piece, 0.5 / (i + 1), 0.25 / (i + 1)), Candidate(99, " dog", 0.1, 0.2)))
        for i, piece in enumerate(pieces)
    )


def _generate(draft: Draft, text: str, tokens: tuple[TokenInfo, ...] | None = None):
    return draft.add_alternative(text, genre="horror", settings=DEFAULT_SETTINGS, seed=1, model="builtin",
                                 tokens=tokens)


def test_encode_decode_round_trip_to_0_01_percent() -> None:
    tokens = _tokens(" The", " cat", " sat", ".")
    data = encode_tokens(tokens)
    assert data["words"] == [" The", " dog", " cat", " sat", "."]  # each candidate text once
    back = decode_tokens(json.loads(json.dumps(data)), " The cat sat.")
    assert [t.text for t in back] == [" The", " cat", " sat", "."]
    for old, new in zip(tokens, back):
        assert new.prob == pytest.approx(old.prob, abs=1e-4) and new.raw_prob == pytest.approx(old.raw_prob, abs=1e-4)
        assert [c.text for c in new.top] == [c.text for c in old.top]
        assert [c.raw_prob for c in new.top] == pytest.approx([c.raw_prob for c in old.top], abs=1e-3)


@pytest.mark.parametrize("broken", [None, [], {"ends": [3]}, {"ends": [1, 2], "p": [1, 2], "raw": [1, 2],
                                    "words": [], "top": [[0, 1, 1], []]}, {"ends": [99], "p": [1], "raw": [1],
                                    "words": [], "top": [[]]}])
def test_data_that_does_not_fit_reads_as_none(broken) -> None:
    assert decode_tokens(broken, "ab") is None


def test_tokens_are_saved_with_their_passage_and_load_again(tmp_path: Path) -> None:
    draft = Draft("Night", "horror")
    draft.set_text("Once")
    passage = _generate(draft, " The cat sat.", _tokens(" The", " cat", " sat", "."))
    save_draft(draft, tmp_path / "d.json")
    loaded = load_draft(tmp_path / "d.json")
    again = loaded.passage(passage.id)
    assert [t.text for t in again.token_infos()] == [" The", " cat", " sat", "."]
    assert again.branch is None


def test_tokens_that_do_not_join_to_the_text_are_not_kept() -> None:
    draft = Draft()
    passage = _generate(draft, " The cat", _tokens(" The", " dog"))
    assert passage.tokens is None and passage.token_infos() is None


def test_a_draft_written_before_token_data_opens_unchanged(tmp_path: Path) -> None:
    old = {
        "format_version": 1, "title": "Old", "genre": "horror", "memory": "", "model_id": "builtin",
        "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00",
        "settings": DEFAULT_SETTINGS.to_dict(), "text": "Once upon", "pending_id": None, "last_accepted_id": "a1",
        "passages": [{"id": "a1", "parent_id": None, "text": " upon", "genre": "horror", "settings": {},
                      "seed": 3, "model": "builtin", "created_at": "2026-01-01T00:00:00+00:00", "accepted": True,
                      "stopped": False, "context_length": 4,
                      "context_digest": "0" * 64}],
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    draft = load_draft(path)
    passage = draft.passage("a1")
    assert (passage.tokens, passage.branch, passage.token_infos()) == (None, None, None)
    assert draft.text == "Once upon"
    assert passage.to_dict() == old["passages"][0]  # written back exactly as it was read (no new keys)


def test_swap_on_the_pending_passage_is_a_sibling_with_its_branch_point() -> None:
    draft = Draft()
    draft.set_text("Once")
    source = _generate(draft, " The cat sat.", _tokens(" The", " cat", " sat", "."))
    swapped = draft.add_swap(source.id, 1, " The dog ran.", tokens=_tokens(" The", " dog", " ran", "."),
                             genre="horror", settings=DEFAULT_SETTINGS, seed=2, model="builtin")
    assert draft.pending is swapped
    assert draft.alternatives() == [source, swapped]
    assert swapped.parent_id == source.parent_id
    assert swapped.branch == {"from": source.id, "token": 1}
    assert draft.undo_label == "swap"
    draft.undo()
    assert draft.pending is source and draft.text == "Once"
    assert swapped.id in [p.id for p in draft.passages]  # undo never removes a node


def test_swap_on_the_accepted_passage_replaces_it_at_the_end() -> None:
    draft = Draft()
    draft.set_text("Once")
    source = _generate(draft, " The cat sat.", _tokens(" The", " cat", " sat", "."))
    draft.accept()
    swapped = draft.add_swap(source.id, 1, " The dog ran.", tokens=None, genre="horror",
                             settings=DEFAULT_SETTINGS, seed=2, model="builtin")
    assert draft.text == "Once The dog ran." and draft.pending is None
    assert draft.last_accepted is swapped and swapped.accepted
    assert draft.alternatives() == [source, swapped]
    draft.undo()
    assert draft.text == "Once The cat sat." and draft.last_accepted is source


def test_swap_refused_on_an_older_passage() -> None:
    draft = Draft()
    draft.set_text("Once")
    old = _generate(draft, " The cat sat.")
    draft.accept()
    _generate(draft, " Then more.")
    draft.accept()
    with pytest.raises(DraftError, match="newest"):
        draft.add_swap(old.id, 0, " A", tokens=None, genre=None, settings={}, seed=None, model="m")


def test_placed_passages_follow_the_story() -> None:
    draft = Draft()
    draft.set_text("Once")
    first = _generate(draft, " upon")
    draft.accept()
    draft.set_text(draft.text + " a")
    second = _generate(draft, " time.")
    assert draft.placed_passages() == [(4, first), (len("Once upon a"), second)]
    draft.set_text("Twice upon a")  # the first passage's text moved: it is no longer placed
    assert draft.placed_passages() == []
