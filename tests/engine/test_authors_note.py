"""The author's note: exact prompts for depth and memory combinations, trimming a story longer than the window
(Hypothesis: the prompt fits, the header is first, the story's tail is last apart from the note), the half-window
warning, validation, and smart context still reusing the cache up to the note."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyterm.engine.authors_note import split_at_depth
from storyterm.engine.errors import SettingsError
from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.loading import LoadedModel, ModelSpec, load_model
from storyterm.engine.prompt import build_prompt
from storyterm.engine.settings import SamplerSettings

GREEDY = SamplerSettings(max_new_tokens=16, do_sample=False)
SENTENCES = ["A man walks into a bar.", "The ghost screams.", "She falls in love.", "The detective finds a letter."]
STORY = " ".join(SENTENCES)
NOTE = "Style: tense"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    from tests.conftest import build_tiny_checkpoint

    return load_model(ModelSpec(str(build_tiny_checkpoint(tmp_path_factory.mktemp("note"))), device="cpu"))


def _ids(loaded: LoadedModel, text: str) -> list[int]:
    return loaded.tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("memory", ["", "Anna is a nurse."])
@pytest.mark.parametrize(("depth", "story_with_note"), [
    (0, STORY + " [Style: tense]"),
    (1, " ".join(SENTENCES[:3]) + " [Style: tense] " + SENTENCES[3]),
    (3, SENTENCES[0] + " [Style: tense] " + " ".join(SENTENCES[1:])),
    (4, "[Style: tense] " + STORY),
    (9, "[Style: tense] " + STORY),
])
def test_exact_prompt_for_depth_and_memory(loaded: LoadedModel, memory: str, depth: int, story_with_note: str) -> None:
    engine = StoryEngine(loaded)
    request = GenerationRequest("drama", STORY, memory=memory, settings=GREEDY, authors_note=NOTE,
                                authors_note_depth=depth)
    prepared = engine.prepare(request)
    assert prepared.input_ids == _ids(loaded, build_prompt("drama", story_with_note, memory))
    assert engine.prompt_text(request) == build_prompt("drama", story_with_note, memory)
    assert prepared.note_tokens == len(_ids(loaded, " [Style: tense]"))
    assert not prepared.context_trimmed and prepared.warnings == ()


def test_default_depth_is_three_and_an_unfinished_sentence_counts(loaded: LoadedModel) -> None:
    engine = StoryEngine(loaded)
    story = STORY + " He"
    default = engine.prompt_text(GenerationRequest("drama", story, settings=GREEDY, authors_note="[Noir]"))
    assert default == build_prompt("drama", " ".join(SENTENCES[:2]) + " [Noir] " + " ".join(SENTENCES[2:]) + " He")
    one = engine.prompt_text(GenerationRequest("drama", story, settings=GREEDY, authors_note="[Noir]",
                                               authors_note_depth=1))
    assert one == build_prompt("drama", STORY + " [Noir] He")
    assert split_at_depth("No sentence end here", 2) == ("", "No sentence end here")


def test_no_note_gives_the_same_prompt_as_before(loaded: LoadedModel) -> None:
    engine = StoryEngine(loaded)
    plain = engine.prepare(GenerationRequest("drama", STORY, memory="Anna.", settings=GREEDY))
    blank = engine.prepare(GenerationRequest("drama", STORY, memory="Anna.", settings=GREEDY, authors_note="   "))
    assert plain == blank
    assert plain.input_ids == _ids(loaded, build_prompt("drama", STORY, "Anna."))


def test_note_in_free_mode_and_empty_story(loaded: LoadedModel) -> None:
    engine = StoryEngine(loaded)
    assert engine.prompt_text(GenerationRequest("drama", "", settings=GREEDY, authors_note=NOTE)) == \
        build_prompt("drama", "[Style: tense]")
    result = engine.generate(GenerationRequest("drama", "", settings=GREEDY, authors_note=NOTE))
    assert result.stats.prompt_tokens == len(_ids(loaded, build_prompt("drama", "[Style: tense]")))


@pytest.mark.parametrize("smart_context", [False, True])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sentence_count=st.integers(0, 80),
    words=st.integers(1, 6),
    depth=st.integers(0, 6),
    memory_words=st.integers(0, 12),
    note_words=st.integers(1, 12),
    max_new=st.integers(1, 60),
)
def test_prompt_always_fits_header_first_story_tail_last(loaded: LoadedModel, smart_context: bool,
                                                          sentence_count: int, words: int, depth: int,
                                                          memory_words: int, note_words: int, max_new: int) -> None:
    window = loaded.context_window
    engine = StoryEngine(loaded, smart_context=smart_context)
    story = " ".join(f"{'Word ' * words}{i}." for i in range(sentence_count))
    memory = " ".join(["Anna"] * memory_words)
    note = " ".join(["tense"] * note_words)
    request = GenerationRequest("horror", story, memory=memory, authors_note=note, authors_note_depth=depth,
                                settings=GREEDY.with_changes(max_new_tokens=max_new))
    prepared = engine.prepare(request)
    ids = prepared.input_ids
    header = _ids(loaded, build_prompt("horror", "", memory))
    note_ids = _ids(loaded, " [" + note + "]")
    assert len(ids) <= window - max_new
    assert ids[:2] == header[:2]  # <BOS> <genre> always
    if len(header) + len(note_ids) > window // 2:
        assert prepared.warnings and "author's note" in prepared.warnings[0] and prepared.note_tokens == 0
        return
    assert ids[: len(header)] == header and prepared.header_tokens == len(header)
    assert prepared.warnings == ()
    before, after = split_at_depth(story, depth)
    if not before:  # the note opens the story
        note_ids = _ids(loaded, " [" + note + "]")
        after = " " + after if after else ""
    start = len(ids) - len(_ids(loaded, after)) - len(note_ids) if not prepared.context_trimmed or before else None
    if start is not None and start >= len(header) and ids[start : start + len(note_ids)] == note_ids:
        # The story after the note is whole and last; the story before it is the tail of the text before the note.
        assert ids[start + len(note_ids):] == _ids(loaded, after)
        story_part = ids[len(header): start]
        before_ids = _ids(loaded, " " + before) if before else []
        assert story_part == before_ids[len(before_ids) - len(story_part):] if story_part else True
    else:
        # The sentences after the note alone overflow: the note directly follows the header, then their end.
        assert prepared.context_trimmed
        assert ids[len(header): len(header) + len(note_ids)] == note_ids
        rest = ids[len(header) + len(note_ids):]
        after_ids = _ids(loaded, after)
        assert rest == after_ids[len(after_ids) - len(rest):]
    story_tokens = _ids(loaded, (" " + story) if story else "")
    if len(header) + len(note_ids) + len(story_tokens) <= window - max_new:
        assert not prepared.context_trimmed  # nothing is cut that fits


def test_note_and_memory_over_half_the_window_give_a_warning(loaded: LoadedModel) -> None:
    engine = StoryEngine(loaded)
    request = GenerationRequest("drama", STORY, memory="Anna.", settings=GREEDY, authors_note="tense " * 40)
    prepared = engine.prepare(request)
    assert len(prepared.warnings) == 1 and "\n" not in prepared.warnings[0]
    assert "author's note" in prepared.warnings[0] and "half" in prepared.warnings[0] and prepared.note_tokens == 0
    assert "tense" not in engine.prompt_text(request)
    assert prepared.input_ids == _ids(loaded, build_prompt("drama", STORY, "Anna."))
    # Memory alone over half the window: its end goes, with a warning; the note is still left out.
    long_memory = GenerationRequest("drama", STORY * 3, memory="Anna " * 40, settings=GREEDY, authors_note="tense")
    prepared = engine.prepare(long_memory)
    assert any("memory is too long" in warning for warning in prepared.warnings)
    assert len(prepared.input_ids) <= loaded.context_window - GREEDY.max_new_tokens


@pytest.mark.parametrize(("note", "depth", "message"), [
    ("x", -1, "depth must be a whole number of sentences from 0 to 100"),
    ("x", 101, "from 0 to 100"),
    ("x", True, "from 0 to 100"),
    ("x", "3", "from 0 to 100"),
    ("x" * 1001, 3, "at most 1000 characters"),
    (None, 3, "must be text"),
])
def test_bad_note_or_depth_is_refused(loaded: LoadedModel, note, depth, message) -> None:
    engine = StoryEngine(loaded)
    with pytest.raises(SettingsError, match=message) as error:
        engine.stream(GenerationRequest("drama", STORY, settings=GREEDY, authors_note=note, authors_note_depth=depth))
    assert "\n" not in str(error.value) and not engine.busy


def test_smart_context_reuses_the_cache_up_to_the_note(loaded: LoadedModel) -> None:
    engine = StoryEngine(loaded)
    story = STORY
    for passage in range(3):
        request = GenerationRequest("drama", story, settings=GREEDY, authors_note=NOTE, authors_note_depth=1)
        result = engine.generate(request)
        if passage:
            prepared = engine.prepare(request)
            assert 0 < result.stats.cached_prompt_tokens < len(prepared.input_ids)
        story = story + result.text + " Then it ends."
