"""Per-token probabilities (engine/token_probs.py) and token swaps (engine/swap.py) with the tiny in-test model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from storyterm.engine.errors import SettingsError, StorytermError
from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.loading import LoadedModel, ModelSpec, load_model
from storyterm.engine.settings import SamplerSettings
from storyterm.engine.swap import stream_swap
from storyterm.engine.token_probs import TokenSwap, tokens_at

GREEDY = SamplerSettings(max_new_tokens=20, do_sample=False, repetition_penalty=1.0, trim_sentences=False)
SAMPLED = SamplerSettings(max_new_tokens=20, seed=7, temperature=1.5, top_k=30, top_p=0.9, repetition_penalty=1.0,
                          trim_sentences=False)
STORY = "The ghost screams in the old house and"


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint: Path) -> LoadedModel:
    return load_model(ModelSpec(str(tiny_checkpoint), device="cpu"))


@pytest.fixture
def engine(loaded: LoadedModel) -> StoryEngine:
    return StoryEngine(loaded, smart_context=False)


def _forward_probs(engine: StoryEngine, request: GenerationRequest, ids: list[int]) -> torch.Tensor:
    """Softmax of a separate forward pass over prompt + generated ids: row j = the distribution of token j."""
    prompt = engine.prepare(request).input_ids
    with torch.no_grad():
        logits = engine.loaded.model(torch.tensor([prompt + ids])).logits[0].float()
    return torch.softmax(logits[len(prompt) - 1 : len(prompt) - 1 + len(ids)], dim=-1)


def test_off_reports_nothing(engine: StoryEngine) -> None:
    result = engine.generate(GenerationRequest("horror", STORY, settings=GREEDY))
    assert result.tokens == ()


def test_greedy_probabilities_equal_a_separate_forward_pass(engine: StoryEngine) -> None:
    request = GenerationRequest("horror", STORY, settings=GREEDY, token_probs=5)
    result = engine.generate(request)
    tokens = result.tokens[0]
    assert tokens and "".join(t.text for t in tokens) == result.text
    expected = _forward_probs(engine, request, [t.token_id for t in tokens])
    for j, token in enumerate(tokens):
        assert token.raw_prob == pytest.approx(expected[j, token.token_id].item(), abs=1e-4)
        top = [c.raw_prob for c in token.top]
        assert len(top) == 5 and top == sorted(top, reverse=True) and sum(top) <= 1 + 1e-6
        assert sum(c.prob for c in token.top) <= 1 + 1e-6
        assert top[0] == pytest.approx(expected[j].max().item(), abs=1e-4)
        # greedy: the written token is the likeliest one the processors left
        assert token.prob == pytest.approx(max(c.prob for c in token.top), abs=1e-6)
        assert token.prob >= token.raw_prob - 1e-6  # suppressed tokens' mass goes to the others


def test_sampled_prob_is_what_the_processors_give(engine: StoryEngine) -> None:
    request = GenerationRequest("horror", STORY, settings=SAMPLED, token_probs=3)
    result = engine.generate(request)
    tokens = result.tokens[0]
    assert tokens and "".join(t.text for t in tokens) == result.text
    ids = [t.token_id for t in tokens]
    prompt = engine.prepare(request).input_ids
    with torch.no_grad():
        logits = engine.loaded.model(torch.tensor([prompt + ids])).logits[0].float()
    warpers = LogitsProcessorList([TemperatureLogitsWarper(1.5), TopKLogitsWarper(30), TopPLogitsWarper(0.9)])
    differs = False
    for j, token in enumerate(tokens[1:], start=1):  # the first token also has the spacing rule's mask
        scores = logits[len(prompt) - 1 + j].clone().unsqueeze(0)
        scores[0, engine.suppressed_token_ids] = float("-inf")
        context = torch.tensor([prompt + ids[:j]])
        processed = torch.softmax(warpers(context, scores), dim=-1)[0]
        assert token.prob == pytest.approx(processed[token.token_id].item(), abs=1e-4)
        assert token.prob > 0  # it was drawn from this distribution
        differs |= abs(token.prob - token.raw_prob) > 1e-3
    assert differs  # temperature and top-p change the distribution


def test_probabilities_do_not_change_what_is_sampled(engine: StoryEngine) -> None:
    settings = replace(SAMPLED, repetition_penalty=1.3, min_p=0.05, num_alternatives=2)
    off = engine.generate(GenerationRequest("horror", STORY, settings=settings))
    on = engine.generate(GenerationRequest("horror", STORY, settings=settings, token_probs=2))
    assert on.texts == off.texts
    assert len(on.tokens) == 2
    for text, tokens in zip(on.texts, on.tokens):
        assert tokens is not None and "".join(t.text for t in tokens) == text


def test_trimmed_passage_tokens_join_to_its_text(engine: StoryEngine) -> None:
    settings = replace(SAMPLED, trim_sentences=True, max_new_tokens=30)
    for seed in range(4):
        result = engine.generate(GenerationRequest("horror", STORY + ".", settings=replace(settings, seed=seed),
                                                   token_probs=2))
        tokens = result.tokens[0]
        assert tokens is not None and "".join(t.text for t in tokens) == result.text


def test_bad_token_probs_is_refused(engine: StoryEngine) -> None:
    with pytest.raises(SettingsError, match="token_probs"):
        engine.generate(GenerationRequest("horror", STORY, settings=GREEDY, token_probs=-1))


def test_swap_keeps_the_prefix_and_starts_with_the_replacement(engine: StoryEngine) -> None:
    request = GenerationRequest("horror", STORY, settings=GREEDY, token_probs=4)
    first = engine.generate(request)
    tokens = first.tokens[0]
    index = 3
    replacement = tokens[index].top[1]  # the model's second choice there
    assert replacement.token_id != tokens[index].token_id
    swap = TokenSwap(first.text, tokens, index, replacement)
    stream = stream_swap(engine, request, swap)
    streamed = "".join(stream)
    result = stream.result()
    prefix = "".join(t.text for t in tokens[:index])
    assert result.text == streamed
    assert result.text.startswith(prefix + replacement.text)
    new_tokens = result.tokens[0]
    assert [t.token_id for t in new_tokens[:index]] == [t.token_id for t in tokens[:index]]
    assert new_tokens[index].token_id == replacement.token_id
    assert new_tokens[index].raw_prob == replacement.raw_prob
    assert "".join(t.text for t in new_tokens) == result.text
    # the continuation is what the model writes after the story + prefix + replacement
    direct = engine.generate(replace(request, story=STORY + prefix + replacement.text))
    assert result.text[len(prefix + replacement.text):].startswith(direct.text[:10])


def test_swap_refuses_an_edited_passage(engine: StoryEngine) -> None:
    result = engine.generate(GenerationRequest("horror", STORY, settings=GREEDY, token_probs=2))
    tokens = result.tokens[0]
    with pytest.raises(StorytermError, match="edited"):
        TokenSwap(result.text + "x", tokens, 0, tokens[0].top[1])
    with pytest.raises(StorytermError, match="no token"):
        TokenSwap(result.text, tokens, len(tokens), tokens[0].top[1])


def test_tokens_at_maps_offsets() -> None:
    from storyterm.engine.token_probs import TokenInfo

    tokens = (TokenInfo(1, " a", 0.5, 0.5), TokenInfo(2, "bc", 0.5, 0.5), TokenInfo(3, "", 1, 1),
              TokenInfo(4, "d", 1, 1))
    assert [tokens_at(tokens, i) for i in range(6)] == [0, 0, 1, 1, 3, None]
