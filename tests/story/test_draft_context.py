"""Per-draft context fields (author's note and depth, banned words, stop sequences, lorebook): saved with the draft,
old drafts open unchanged and are written back byte for byte, bad hand edits fall back with a warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyterm.engine.lorebook import Lorebook, LorebookEntry
from storyterm.engine.settings import DEFAULT_SETTINGS
from storyterm.story.draft import Draft, NewerFormatError
from storyterm.story.draft_context import DraftContext
from storyterm.story.store import load_draft, save_draft

CONTEXT = DraftContext(
    authors_note="Style: tense", authors_note_depth=1, banned_words=("suddenly",), stop_sequences=("\n\n", "THE END"),
    lorebook=Lorebook((LorebookEntry(("Anna", "the nurse"), "Anna is a nurse."),
                       LorebookEntry((), "It rains.", always_on=True)), scan_chars=500, token_budget=100),
)
# A draft file as storyterm wrote it before the context fields existed.
OLD_FILE = (
    '{\n  "format_version": 1,\n  "title": "Night",\n  "genre": "horror",\n  "memory": "Anna.",\n'
    '  "model_id": "builtin",\n  "created_at": "2026-01-01T00:00:00+00:00",\n'
    '  "updated_at": "2026-01-01T00:00:00+00:00",\n  "settings": ' + json.dumps(DEFAULT_SETTINGS.to_dict()) +
    ',\n  "text": "The house creaks.",\n'
    '  "pending_id": null,\n  "last_accepted_id": null,\n  "passages": []\n}\n'
)


def test_context_round_trips_through_the_file(tmp_path: Path) -> None:
    draft = Draft("Night", "horror", memory="Anna.")
    start = draft.revision
    draft.context = CONTEXT
    assert draft.revision > start  # autosave sees the change
    path = tmp_path / "night.json"
    save_draft(draft, path)
    data = json.loads(path.read_text("utf-8"))
    assert data["format_version"] == 2 and list(data).index("context") == list(data).index("settings") + 1
    again = load_draft(path)
    assert again.context == CONTEXT and again.load_warnings == []


def test_an_old_draft_opens_with_empty_context_and_is_written_back_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(OLD_FILE, encoding="utf-8")
    draft = load_draft(path)
    assert draft.context == DraftContext() and draft.text == "The house creaks." and draft.load_warnings == []
    save_draft(draft, path)
    assert json.loads(path.read_text("utf-8")) == json.loads(OLD_FILE)
    assert path.read_text("utf-8").startswith('{\n  "format_version": 1,')


def test_a_draft_that_sets_no_context_stays_format_one() -> None:
    draft = Draft()
    draft.context = DraftContext(authors_note_depth=3)
    assert draft.to_dict()["format_version"] == 1 and "context" not in draft.to_dict()


def test_a_newer_format_is_refused() -> None:
    data = Draft().to_dict()
    data["format_version"] = 3
    with pytest.raises(NewerFormatError):
        Draft.from_dict(data)


@pytest.mark.parametrize(("raw", "field", "kept"), [
    ({"authors_note": 5}, "author's note", {}),
    ({"authors_note_depth": -2, "authors_note": "ok"}, "depth", {"authors_note": "ok"}),
    ({"banned_words": "suddenly"}, "list of texts", {}),
    ({"stop_sequences": [""]}, "stop sequence", {}),
    ({"lorebook": {"entries": [{"keys": [], "text": "x"}]}, "banned_words": ["a"]}, "no keys",
     {"banned_words": ("a",)}),
    ("nonsense", "not an object", {}),
])
def test_a_bad_hand_edit_falls_back_with_a_warning(raw: object, field: str, kept: dict) -> None:
    data = Draft("T").to_dict()
    data["format_version"] = 2
    data["context"] = raw
    draft = Draft.from_dict(data)
    assert len(draft.load_warnings) == 1 and field in draft.load_warnings[0]
    assert draft.context == DraftContext(**kept)


def test_request_fields_match_the_generation_request() -> None:
    from storyterm.engine.generation import GenerationRequest

    request = GenerationRequest("horror", "x", **CONTEXT.request_fields())
    assert (request.authors_note, request.lorebook, request.stop_sequences) == (
        "Style: tense", CONTEXT.lorebook, ("\n\n", "THE END"))
    assert CONTEXT.validate() is CONTEXT
