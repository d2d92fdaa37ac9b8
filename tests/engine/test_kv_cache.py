"""KV caches for every attention type: a cache cut back to a shared prefix and extended must give the logits of a
fresh read (full attention, sliding windows, Gemma-2's interleaved layers), or not be reused at all; static caches
are sized to the passage, not to the model's maximum context."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from storyterm.engine import generation, kv_cache
from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.loading import LoadedModel, ModelSpec, load_model
from storyterm.engine.settings import SamplerSettings
from tests.model_zoo import SLIDING_WINDOW

WINDOW_FAMILIES = ["mistral-sliding", "phi3", "gemma2", "qwen2-sliding"]


_LOADED: dict[Path, LoadedModel] = {}


def load(model_zoo: Callable[[str], Path], family: str) -> LoadedModel:
    """fp32 on the CPU, loaded once per checkpoint (tests only read the model)."""
    path = model_zoo(family)
    if path not in _LOADED:
        _LOADED[path] = load_model(ModelSpec(str(path), device="cpu", dtype="fp32"))
    return _LOADED[path]


def logits(model, ids: list[int], cache=None) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids]), cache=cache, use_cache=cache is not None).logits[0]


def ids_of(length: int, vocab: int, seed: int = 0) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(5, vocab - 1, (length,), generator=generator).tolist()


@pytest.mark.parametrize("family", [*WINDOW_FAMILIES, "llama-sentencepiece"])
@pytest.mark.parametrize(("held", "shared"), [(60, 40), (60, 55), (12, 8), (60, 60)],
                         ids=["cut-across-window", "cut-inside-window", "below-window", "no-cut"])
def test_a_cut_back_cache_gives_the_logits_of_a_fresh_read(model_zoo, family: str, held: int, shared: int) -> None:
    loaded = load(model_zoo, family)
    model, config = loaded.model, loaded.model.config
    ids = ids_of(90, config.vocab_size)
    cache = kv_cache.new_cache(config)
    logits(model, ids[:held], cache)
    reused = kv_cache.reuse(cache, shared, total_tokens=90, grow_to=90, model_config=config)
    assert reused is not None and kv_cache.cached_length(reused) == shared
    fresh = logits(model, ids)[shared:]
    continued = logits(model, ids[shared:], reused)
    torch.testing.assert_close(continued, fresh, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", WINDOW_FAMILIES)
def test_a_window_that_dropped_the_tokens_is_not_reused(model_zoo, family: str) -> None:
    from transformers import DynamicCache

    loaded = load(model_zoo, family)
    config = loaded.model.config
    plain = DynamicCache(config=config)  # transformers' default: sliding layers keep only the window
    logits(loaded.model, ids_of(60, config.vocab_size), plain)
    assert kv_cache.reuse(plain, 40, total_tokens=90, grow_to=90, model_config=config) is None
    assert kv_cache.reuse(plain, 60, total_tokens=90, grow_to=90, model_config=config) is plain  # extended only


def test_a_recording_window_is_cut_back_only_as_far_as_it_still_holds(model_zoo) -> None:
    loaded = load(model_zoo, "mistral-sliding")
    model, config = loaded.model, loaded.model.config
    ids = ids_of(90, config.vocab_size)
    cache = kv_cache.new_cache(config)
    logits(model, ids[:60], cache)
    cache = kv_cache.reuse(cache, 50, total_tokens=90, grow_to=90, model_config=config)  # keeps 50 - W + 1 .. 50
    logits(model, ids[50:70], cache)
    assert kv_cache.reuse(cache, 50 - SLIDING_WINDOW, total_tokens=90, grow_to=90, model_config=config) is None
    cache = kv_cache.new_cache(config)
    logits(model, ids[:60], cache)
    cache = kv_cache.reuse(cache, 50, total_tokens=90, grow_to=90, model_config=config)
    logits(model, ids[50:70], cache)
    again = kv_cache.reuse(cache, 52, total_tokens=90, grow_to=90, model_config=config)
    assert again is not None
    torch.testing.assert_close(logits(model, ids[52:], again), logits(model, ids)[52:], atol=1e-5, rtol=1e-4)


def test_a_static_cache_too_small_for_the_next_passage_is_copied_into_a_larger_one(model_zoo) -> None:
    loaded = load(model_zoo, "llama-sentencepiece")
    model, config = loaded.model, loaded.model.config
    ids = ids_of(90, config.vocab_size)
    cache = kv_cache.new_cache(config, static_capacity=60)
    logits(model, ids[:60], cache)
    bigger = kv_cache.reuse(cache, 45, total_tokens=90, grow_to=100, model_config=config)
    assert bigger is not cache and kv_cache.capacity(bigger) == 100 and kv_cache.cached_length(bigger) == 45
    torch.testing.assert_close(logits(model, ids[45:], bigger), logits(model, ids)[45:], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", WINDOW_FAMILIES)
def test_sliding_window_models_never_get_a_static_cache(model_zoo, family: str, monkeypatch) -> None:
    monkeypatch.setattr(generation, "STATIC_CACHE_MIN_PROMPT_TOKENS", 1)
    engine = StoryEngine(load(model_zoo, family))
    assert not engine._wants_static_cache(500)
    assert kv_cache.capacity(engine._new_cache(100, 20)) is None
    with pytest.raises(ValueError, match="full attention"):
        kv_cache.new_cache(engine.loaded.model.config, static_capacity=64)


def test_static_caches_are_sized_to_the_passage_not_the_models_maximum() -> None:
    assert kv_cache.static_capacity(600, 100, 131_072) == 1024  # 600 + 100 + room for two more passages
    assert kv_cache.static_capacity(600, 100, 1024) == 1024
    assert kv_cache.static_capacity(900, 124, 1024) == 1024  # never past the window a prompt is trimmed to
    assert kv_cache.static_capacity(30, 200, 64) == 230  # at least what this passage needs


GREEDY = SamplerSettings(max_new_tokens=10, do_sample=False)
STORY = ("The ghost screams in the old house. The family runs into the night! Nobody believes the old priest? "
         "Anna lights a candle in the cellar. ") * 6


def passages(engine: StoryEngine, count: int, *, fresh: bool) -> list:
    story, results = STORY, []
    genre = engine.loaded.genres[0] if engine.loaded.genres else None
    for _ in range(count):
        if fresh:  # the same windows, each read from scratch
            engine._prompt_cache.clear()
        result = engine.generate(GenerationRequest(genre, story, settings=GREEDY))
        results.append(result)
        story += result.text
    return results


@pytest.mark.parametrize("family", WINDOW_FAMILIES)
def test_passages_with_a_reused_sliding_window_cache_equal_fresh_reads(model_zoo, family: str) -> None:
    loaded = load(model_zoo, family)
    reused = passages(StoryEngine(loaded), 5, fresh=False)
    fresh = passages(StoryEngine(loaded), 5, fresh=True)
    assert [r.text for r in reused] == [r.text for r in fresh]
    assert all(r.stats.prompt_tokens > SLIDING_WINDOW for r in reused)
    assert sum(r.stats.cached_prompt_tokens > SLIDING_WINDOW for r in reused) >= 2


def test_passages_with_a_reused_static_cache_that_has_to_grow_equal_fresh_reads(model_zoo, monkeypatch) -> None:
    monkeypatch.setattr(generation, "STATIC_CACHE_MIN_PROMPT_TOKENS", 1)
    monkeypatch.setattr(kv_cache, "STATIC_CACHE_SPARE_PASSAGES", 0)  # no room to spare: every reuse copies
    monkeypatch.setattr(kv_cache, "STATIC_CACHE_STEP", 1)
    loaded = load(model_zoo, "llama-sentencepiece")
    engine = StoryEngine(loaded)
    grown = []
    original = kv_cache._copy_into_static
    monkeypatch.setattr(kv_cache, "_copy_into_static", lambda *args: grown.append(args[2]) or original(*args))
    reused = passages(engine, 5, fresh=False)
    fresh = passages(StoryEngine(loaded), 5, fresh=True)
    assert [r.text for r in reused] == [r.text for r in fresh]
    assert kv_cache.capacity(engine._prompt_cache._cache) is not None  # the engine did use a static cache
    assert grown and all(size < loaded.context_window for size in grown)
    assert sum(r.stats.cached_prompt_tokens > 0 for r in reused) >= 2
