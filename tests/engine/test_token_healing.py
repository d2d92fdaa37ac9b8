"""Token healing: a model without a word list finishes the writer's half-written word ("The lett" → "er…"). The
last word is half-written by English words and the vocabulary's; the story's last token is left out and the first
new token must begin with its text; the passage is what follows that text — streamed, final and token spans alike,
on the torch and the GGUF engine."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.loading import LoadedModel
from storyterm.engine.settings import SamplerSettings
from storyterm.engine.swap import swap_request
from storyterm.engine.token_probs import TokenSwap
from tests.engine.test_passage import (  # noqa: F401 - any_loaded is a fixture
    any_loaded, genre_of, script_model, scripted_passage)

GREEDY = SamplerSettings(max_new_tokens=6, do_sample=False, trim_sentences=False)


def half_written(engine: StoryEngine, genre: str | None) -> tuple[str, str, str]:
    """(story, the whole word its last word begins, the healed token's text): a story ending with a prefix of one of
    the vocabulary's whole words that is no finished word itself, and whose last token other tokens begin with."""
    finished, _beginnings = engine._surfaces().whole_words()
    words = {s[1:].lower() for s in engine._surfaces().surfaces if re.fullmatch(r" [A-Za-z]+", s)}
    for word in sorted(words, key=lambda w: (-len(w), w)):
        for cut in range(len(word) - 1, 1, -1):
            story = f"The ghost saw the {word[:cut]}"
            if word[:cut] in finished:
                continue
            healed = engine.prepare_passage(GenerationRequest(genre, story, settings=GREEDY)).healed
            if healed:
                return story, word, healed
    raise AssertionError("no half-written word heals with this vocabulary")


def test_a_half_written_word_is_healed_and_finished(any_loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = StoryEngine(any_loaded)
    assert not engine.word_guard_available  # no word list: English and the vocabulary's words decide
    genre = genre_of(any_loaded)
    story, _word, healed = half_written(engine, genre)
    request = GenerationRequest(genre, story, settings=GREEDY, token_probs=20)
    prepared, healing = engine.prepare(request), engine.prepare_passage(request)
    assert healing.input_ids == prepared.input_ids[:-1]  # the last token is left out, to be written again
    assert story.endswith(healed.lstrip()) and engine.prompt_text(request).endswith(story)  # the viewer: all of it
    surfaces = engine._surfaces().surfaces
    longer = max((i for i, s in enumerate(surfaces) if s.startswith(healed) and s != healed),
                 key=lambda i: len(surfaces[i]))
    streamed, result = scripted_passage(engine, any_loaded, monkeypatch, request, longer)
    rest = surfaces[longer][len(healed):]
    assert result.text.startswith(rest) and rest[0].isalpha(), result.text  # the word goes straight on
    assert streamed == result.text
    (tokens,) = result.tokens
    assert "".join(token.text for token in tokens) == result.text  # probability spans line up
    assert tokens[0].text == rest and tokens[0].prob == 1.0  # greedy: the scripted token, the story's text cut
    # Its candidates: what else could have followed the writer's text (a swap there continues the story's word).
    assert all(surfaces[c.token_id] == healed + c.text for c in tokens[0].top)


def test_the_model_may_end_the_word_as_the_writer_left_it_but_never_drop_it(
        any_loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = StoryEngine(any_loaded)
    genre = genre_of(any_loaded)
    story, _word, healed = half_written(engine, genre)
    request = GenerationRequest(genre, story, settings=GREEDY)
    surfaces = engine._surfaces().surfaces
    streamed, result = scripted_passage(engine, any_loaded, monkeypatch, request, surfaces.index(healed))
    assert result.text.startswith(".") and streamed == result.text  # the healed token again, then the model's text
    # A model that wants a token not beginning with the writer's text gets one that does.
    other = next(i for i, s in enumerate(surfaces) if s.strip() and not s.startswith(healed))
    start, firsts = len(engine.prepare_passage(request).input_ids), []

    def wants_other(length: int, last: int) -> int:
        if length == start + 1:
            firsts.append(last)
        return other

    script_model(any_loaded, monkeypatch, wants_other)
    engine.generate(request)
    assert firsts and surfaces[firsts[0]].startswith(healed)


def test_finished_words_swaps_and_instruct_replies_are_not_healed(any_loaded: LoadedModel) -> None:
    engine = StoryEngine(any_loaded)
    genre = genre_of(any_loaded)
    story, word, _healed = half_written(engine, genre)
    cut = story.rsplit(" ", 1)[1]
    for finished in (f"The ghost saw the {word}", f"The {cut} came. The ghost saw the {cut}", story + " "):
        request = GenerationRequest(genre, finished, settings=GREEDY)
        assert engine.prepare_passage(request) == engine.prepare(request), finished
    request = GenerationRequest(genre, story, settings=GREEDY, token_probs=3)
    passage = engine.generate(request)
    swap = TokenSwap(passage.text, passage.tokens[0], 1, passage.tokens[0][1].top[0])
    swapped = swap_request(request, swap)
    assert not swapped.heal and engine.prepare_passage(swapped) == engine.prepare(swapped)  # the chosen token stays
    with_words = StoryEngine(replace(any_loaded, known_words=lambda: frozenset({"the", "ghost", "saw"})))
    assert with_words.prepare_passage(request) == with_words.prepare(request)  # a word list decides: passage.MID_WORD


@pytest.mark.gguf
def test_the_gguf_engine_heals_as_the_torch_engine_does(tiny_gguf) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'storyterm[gguf]')")
    from storyterm.engine.loading import ModelSpec, load_model, open_engine

    ours = open_engine(load_model(ModelSpec(str(tiny_gguf))))
    theirs = StoryEngine(load_model(ModelSpec(str(tiny_gguf.parent / "checkpoint"), device="cpu", dtype="fp32")))
    story, _word, healed = half_written(theirs, None)
    request = GenerationRequest(None, story, settings=GREEDY.with_changes(max_new_tokens=8), token_probs=5)
    assert ours.prepare_passage(request) == theirs.prepare_passage(request)
    mine, torch_result = ours.generate(request), theirs.generate(request)
    assert mine.texts == torch_result.texts
    assert "".join(token.text for token in mine.tokens[0]) == mine.text
    first = mine.tokens[0][0]
    assert ours._surfaces().surfaces[first.token_id].startswith(healed)  # the first token began with the story's


@pytest.mark.parametrize(("story", "half_written_word"), [
    ("The dragon slept. The dra", True),  # no English word, begins "dragon"
    ("The knight drew his sw", True),  # a short piece a vocabulary may hold whole is still no word
    ("He walked into the tavern", False),
    ("She opened the do", False),  # a word: left as the writer wrote it (a word list would say the same)
    ("A Ghost", False),
    ("Then Zorb", False),  # begins nothing: a name of the writer's, finished
    ("Zorbulax came. Then Zorb", True),  # begins a name the story used
])
def test_english_words_tell_a_half_written_word(any_loaded: LoadedModel, story: str, half_written_word: bool) -> None:
    from storyterm.engine.passage import MID_WORD, plan_start, unfinished_word

    finished, beginnings = StoryEngine(any_loaded)._surfaces().whole_words()
    assert {"do", "dragon", "walked"} <= finished and "dra" not in finished and "sw" not in finished
    kind = plan_start(story, lambda word, before: unfinished_word(word, before, finished, beginnings)).kind
    assert (kind == MID_WORD) == half_written_word
