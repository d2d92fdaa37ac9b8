"""A passage may finish the writer's half-written word ("Then Tav" → "ern…"), decided with the model's word list;
a finished word still gets a new word or punctuation. Without a word list ``plan_start`` takes every word as
finished and the engine heals the words its vocabulary tells unfinished (test_token_healing.py)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from storyterm.engine import passage
from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.loading import LoadedModel
from storyterm.engine.passage import plan_start, unfinished_word
from storyterm.engine.prompt import opening_text
from storyterm.engine.settings import SamplerSettings
from tests.engine.test_passage import (  # noqa: F401 - any_loaded is a fixture
    any_loaded, genre_of, script_model, scripted_passage)

GREEDY = SamplerSettings(max_new_tokens=6, do_sample=False, trim_sentences=False)
KNOWN = frozenset({"then", "the", "he", "walked", "tavern", "walk", "in"})


def rule(known: frozenset[str] = KNOWN, memory: str = ""):
    return lambda word, before: unfinished_word(word, f"{before}\n{memory}", known, sorted(known))


@pytest.mark.parametrize(
    ("story", "memory", "kind"),
    [
        ("Then Tav", "", passage.MID_WORD),  # begins "tavern", is no word
        ("Then the tav", "", passage.MID_WORD),
        ("He walked", "", passage.AFTER_WORD),  # a finished word: never glued onto
        ("He walk", "", passage.AFTER_WORD),  # a word, even if "walked" begins with it
        ("Then Zorb", "", passage.AFTER_WORD),  # begins nothing: a name of the writer's, finished
        ("Then Zorb", "Zorbulax is a wizard.", passage.MID_WORD),  # begins a name in Memory
        ("Zorbulax came. Then Zorb", "", passage.MID_WORD),  # or one earlier in the story
        ("Zorb came. Then Zorb", "", passage.AFTER_WORD),  # the writer used it as a whole word before
        ("Then Tav ", "", passage.AFTER_SPACE),
        (opening_text("Then Tav"), "", passage.AFTER_SPACE),  # the app's own texts end cleanly
        ("Then Tav2", "", passage.AFTER_WORD),
    ],
)
def test_the_writer_s_last_word_is_unfinished_only_by_the_word_list(story: str, memory: str, kind: str) -> None:
    assert plan_start(story, rule(memory=memory)).kind == kind
    assert plan_start(story).kind in (passage.AFTER_WORD, passage.AFTER_SPACE)  # no word list: never mid-word


def with_words(loaded: LoadedModel, known: frozenset[str]) -> StoryEngine:
    return StoryEngine(replace(loaded, known_words=lambda: known))


def continuation_token(engine: StoryEngine) -> tuple[int, str]:
    """A token that goes straight on with letters (no space before it) and the text it adds."""
    engine.generate(GenerationRequest(genre_of(engine.loaded), "The",
                                      settings=GREEDY.with_changes(max_new_tokens=1)))  # builds the token surfaces
    return next((i, s) for i, s in enumerate(engine._token_surfaces.surfaces) if re.fullmatch(r"[a-z]{2,4}", s))


def passage_after(engine: StoryEngine, loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch, story: str,
                  first: int, **request_options) -> tuple[str, object]:
    request = GenerationRequest(genre_of(loaded), story, settings=GREEDY, **request_options)
    return scripted_passage(engine, loaded, monkeypatch, request, first)


def test_a_passage_finishes_the_writer_s_word_and_never_glues_onto_a_finished_one(
        any_loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = StoryEngine(any_loaded)
    first, piece = continuation_token(plain)
    known = frozenset({"then", "the", "he", "walked", f"tav{piece}"})
    engine = with_words(any_loaded, known)
    engine._token_surfaces = plain._token_surfaces
    streamed, result = passage_after(engine, any_loaded, monkeypatch, "Then the tav", first, token_probs=2)
    assert result.text.startswith(piece), result.text  # "tav" + piece: the writer's word, finished
    assert streamed == result.text
    assert "".join(token.text for token in result.tokens[0]) == result.text  # probability spans line up
    # A finished word, with the model's word list and without one (then "tav" is healed: test_token_healing.py)
    for story, words_engine in (("He walked", engine), ("He walked", plain)):
        streamed, result = passage_after(words_engine, any_loaded, monkeypatch, story, first)
        assert result.text and not result.text[0].isalpha(), (story, result.text)  # a new word or punctuation
        assert streamed == result.text


def letter_candidates(result) -> list[float]:
    """Under the sampler settings, the chances of the first token's candidates that go straight on with letters."""
    return [c.prob for c in result.tokens[0][0].top if c.text[:1].isalpha()]


@pytest.mark.gguf
def test_the_gguf_engine_finishes_a_word_as_the_torch_engine_does(tiny_gguf) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'storyterm[gguf]')")
    from storyterm.engine.loading import ModelSpec, load_model, open_engine

    known = frozenset({"then", "the", "he", "walked", "ship", "tavern", "tavish", "tavi", "tavo"})
    ours = open_engine(replace(load_model(ModelSpec(str(tiny_gguf))), known_words=lambda: known))
    theirs = StoryEngine(replace(load_model(ModelSpec(str(tiny_gguf.parent / "checkpoint"), device="cpu",
                                                      dtype="fp32")), known_words=lambda: known))
    results = {}
    for story in ("Then the tav", "He walked"):
        # The guard off: only the spacing rule decides which first tokens may come
        settings = GREEDY.with_changes(max_new_tokens=8, word_guard=False)
        request = GenerationRequest(None, story, settings=settings, token_probs=20)
        results[story] = ours.generate(request)
        assert results[story].texts == theirs.generate(request).texts
        assert letter_candidates(results[story]), "the model's likeliest first tokens include word pieces"
        guarded = replace(request, settings=settings.with_changes(word_guard=True))
        assert ours.generate(guarded).texts == theirs.generate(guarded).texts
    assert any(p > 0 for p in letter_candidates(results["Then the tav"]))  # the writer's word may go on
    assert all(p == 0 for p in letter_candidates(results["He walked"]))  # a finished word is never glued onto
