"""Smart context: a long story's window slides in jumps to sentence starts, and the KV cache of one passage is reused
by the next (the generated text must be exactly what a fresh read of the same prompt gives)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyterm.engine import generation
from storyterm.engine.context import SMART_CONTEXT_SLACK, PromptCache, SmartWindow
from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.loading import LoadedModel, ModelSpec, load_model
from storyterm.engine.settings import SamplerSettings

GREEDY = SamplerSettings(max_new_tokens=12, do_sample=False)
SENTENCES = [
    "The ghost screams in the old house.",
    "The family runs into the night!",
    "Nobody believes the old priest?",
    "Anna lights a candle in the cellar.",
    '"Leave," whispers a voice.',
]


@pytest.fixture
def loaded(tiny_checkpoint: Path) -> LoadedModel:
    return load_model(ModelSpec(str(tiny_checkpoint), device="cpu", dtype="fp32"))


def long_story(sentences: int) -> str:
    return " ".join(SENTENCES[i % len(SENTENCES)] for i in range(sentences))


def story_ids_of(engine: StoryEngine, request: GenerationRequest) -> list[int]:
    prepared = engine.prepare(request)
    return prepared.input_ids[prepared.header_tokens:]


def test_the_window_stays_anchored_while_passages_are_added_then_jumps(loaded: LoadedModel) -> None:
    engine = StoryEngine(loaded)
    story = long_story(40)
    whole = engine._encode_writer_text(" " + story)
    budget = loaded.context_window - GREEDY.max_new_tokens
    first = story_ids_of(engine, GenerationRequest("horror", story, settings=GREEDY))
    header = engine.prepare(GenerationRequest("horror", "", settings=GREEDY)).input_ids
    keep = budget - len(header)
    # The window is the end of the story, starts at a sentence, and leaves slack for the next passages.
    assert first == whole[len(whole) - len(first):]
    assert engine.loaded.tokenizer.decode(first).lstrip()[0] in '"ATN'
    assert len(first) <= keep - int(keep * SMART_CONTEXT_SLACK)
    assert len(first) >= keep // 3

    windows = [first]
    for extra in range(1, 30):
        grown = story + " " + long_story(extra)
        windows.append(story_ids_of(engine, GenerationRequest("horror", grown, settings=GREEDY)))
    starts_kept = sum(1 for a, b in zip(windows, windows[1:]) if b[: len(a)] == a)
    jumps = len(windows) - 1 - starts_kept
    # Most passages extend the previous window (its cache stays valid); a full window jumps.
    assert starts_kept > jumps >= 1
    assert all(len(w) <= keep for w in windows)


def test_an_edit_before_the_anchor_moves_the_window(loaded: LoadedModel) -> None:
    engine = StoryEngine(loaded)
    story = long_story(40)
    first = story_ids_of(engine, GenerationRequest("horror", story, settings=GREEDY))
    edited = "Once upon a time. " + story  # earlier text changed: the old anchor's offset means nothing now
    again = story_ids_of(engine, GenerationRequest("horror", edited + " The end.", settings=GREEDY))
    whole = engine._encode_writer_text(" " + edited + " The end.")
    assert again == whole[len(whole) - len(again):]
    assert again != first


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    words=st.lists(st.sampled_from(["ghost.", "house", "night!", "the", "Mars?", '"Run."', "it's", "a"]),
                   min_size=1, max_size=400),
    growth=st.lists(st.integers(1, 30), min_size=1, max_size=6),
)
def test_every_window_is_the_end_of_the_story_and_fits(loaded: LoadedModel, words, growth) -> None:
    engine = StoryEngine(loaded)
    budget = loaded.context_window - GREEDY.max_new_tokens
    for size in growth:
        words = words + words[:size]
        story = " ".join(words)
        prepared = engine.prepare(GenerationRequest("drama", story, settings=GREEDY))
        window = prepared.input_ids[prepared.header_tokens:]
        whole = engine._encode_writer_text(" " + story)
        assert len(prepared.input_ids) <= budget
        assert window == whole[len(whole) - len(window):]
        assert window, "a long story always keeps some of its text"


def test_smart_window_refuses_a_slack_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="slack"):
        SmartWindow(lambda text: [], slack=1.0)


def _passages(engine: StoryEngine, story: str, count: int, *, drop_cache: bool = False):
    results = []
    for _ in range(count):
        if drop_cache:
            engine._prompt_cache.clear()
        result = engine.generate(GenerationRequest("horror", story, settings=GREEDY))
        results.append(result)
        story += result.text
    return results


@pytest.mark.parametrize("static_from", [10_000, 1], ids=["dynamic cache", "static cache"])
def test_the_next_passage_reuses_the_cache_and_writes_the_same_text(
    loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch, static_from: int
) -> None:
    monkeypatch.setattr(generation, "STATIC_CACHE_MIN_PROMPT_TOKENS", static_from)
    story = long_story(40)
    reused = _passages(StoryEngine(loaded), story, 5)
    fresh = _passages(StoryEngine(loaded), story, 5, drop_cache=True)
    assert [r.text for r in reused] == [r.text for r in fresh]
    assert [r.stats.prompt_tokens for r in reused] == [r.stats.prompt_tokens for r in fresh]
    assert reused[0].stats.cached_prompt_tokens == 0
    assert all(r.stats.cached_prompt_tokens == 0 for r in fresh)
    # A passage that did not jump reads only what is new: the previous prompt (and most of its passage) is cached.
    pairs = list(zip(reused, reused[1:]))
    assert any(after.stats.cached_prompt_tokens >= before.stats.prompt_tokens for before, after in pairs)
    assert all(r.stats.cached_prompt_tokens < r.stats.prompt_tokens for r in reused)


def test_alternatives_and_errors_do_not_use_or_keep_a_cache(loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = StoryEngine(loaded)
    story = long_story(10)
    engine.generate(GenerationRequest("horror", story, settings=GREEDY))
    assert engine._prompt_cache.cached_tokens > 0
    two = engine.generate(GenerationRequest("horror", story, settings=GREEDY.with_changes(do_sample=True, seed=1, num_alternatives=2)))
    assert two.stats.cached_prompt_tokens == 0 and len(two.texts) == 2

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(loaded.model, "forward", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        engine.generate(GenerationRequest("horror", story, settings=GREEDY))
    assert engine._prompt_cache.cached_tokens == 0


def test_without_smart_context_every_passage_reads_its_whole_prompt(loaded: LoadedModel) -> None:
    engine = StoryEngine(loaded, smart_context=False)
    results = _passages(engine, long_story(40), 3)
    budget = loaded.context_window - GREEDY.max_new_tokens
    assert all(r.stats.cached_prompt_tokens == 0 for r in results)
    assert all(r.stats.prompt_tokens == budget for r in results)


def test_prompt_cache_reuses_only_the_common_prefix_and_leaves_one_token_to_read() -> None:
    class FakeCache:
        def __init__(self, length: int) -> None:
            self.length = length

        def get_seq_length(self) -> int:
            return self.length

    def cut_back(cache: FakeCache, length: int) -> FakeCache:
        cuts.append(length)
        cache.length = length
        return cache

    cuts: list[int] = []
    cache = PromptCache()
    cache.keep(FakeCache(5), [1, 2, 3, 4, 5, 6])
    reused, held = cache.take([1, 2, 3, 9, 9], lambda: FakeCache(0), cut_back)
    assert held == 3 and reused.length == 3 and cuts == [3]
    cache.keep(FakeCache(4), [1, 2, 3, 4, 5])
    reused, held = cache.take([1, 2, 3, 4], lambda: FakeCache(0), cut_back)
    assert held == 3 and reused.length == 3  # the whole prompt cached: the last token is read again
    reused, held = cache.take([7], lambda: FakeCache(0), cut_back)
    assert held == 0 and reused.length == 0
    # A cache that cannot be cut back exactly (a sliding window that dropped the tokens) is replaced by a new one.
    cache.keep(FakeCache(5), [1, 2, 3, 4, 5, 6])
    reused, held = cache.take([1, 2, 3, 9], lambda: FakeCache(0), lambda c, n: None)
    assert held == 0 and reused.length == 0 and cache.cached_tokens == 0


def test_forget_context_reads_the_next_passage_afresh(loaded: LoadedModel) -> None:
    engine = StoryEngine(loaded)
    story = long_story(40)
    first = engine.generate(GenerationRequest("horror", story, settings=GREEDY))
    story += first.text
    engine.forget_context()
    again = engine.generate(GenerationRequest("horror", story, settings=GREEDY))
    assert again.stats.cached_prompt_tokens == 0
