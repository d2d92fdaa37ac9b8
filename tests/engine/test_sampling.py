"""Top-p over top-k's survivors (engine/sampling.py): the same tokens kept, the same passages sampled."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import GenerationConfig, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.loading import ModelSpec, load_model
from storyterm.engine.sampling import SparseTopPLogitsWarper, move_warpers
from storyterm.engine.settings import SamplerSettings


@pytest.mark.parametrize(("top_k", "top_p"), [(50, 0.95), (5, 0.5), (1, 0.9), (300, 0.99), (40, 0.01)])
def test_sparse_top_p_keeps_the_tokens_the_full_sort_keeps(top_k: int, top_p: float) -> None:
    torch.manual_seed(top_k)
    ids = torch.zeros((4, 1), dtype=torch.long)
    for _ in range(20):
        scores = TopKLogitsWarper(top_k)(ids, torch.randn(4, 1000) * 3)
        full = TopPLogitsWarper(top_p)(ids, scores.clone())
        sparse = SparseTopPLogitsWarper(top_p, top_k)(ids, scores.clone())
        assert torch.equal(torch.isfinite(sparse), torch.isfinite(full))
        assert torch.equal(sparse[torch.isfinite(sparse)], full[torch.isfinite(full)])


def test_sparse_top_p_sorts_everything_when_ties_left_more_than_k_tokens() -> None:
    ids = torch.zeros((1, 1), dtype=torch.long)
    scores = torch.tensor([[5.0, 1.0, 1.0, 1.0, 1.0, -2.0]])  # top-2 keeps all four tied 1.0s as well
    kept = TopKLogitsWarper(2)(ids, scores)
    assert int(torch.isfinite(kept).sum()) == 5
    full = TopPLogitsWarper(0.99)(ids, kept.clone())
    assert torch.equal(SparseTopPLogitsWarper(0.99, 2)(ids, kept.clone()), full)


def test_move_warpers_leaves_greedy_and_unsorted_configs_alone() -> None:
    for config in (GenerationConfig(do_sample=False, top_k=50, top_p=0.9),
                   GenerationConfig(do_sample=True, top_k=0, top_p=0.9),
                   GenerationConfig(do_sample=True, top_k=50, top_p=1.0)):
        assert move_warpers(config) == (config, [])


def test_move_warpers_takes_temperature_top_k_and_top_p_out_of_the_config() -> None:
    config = GenerationConfig(do_sample=True, temperature=1.2, top_k=50, top_p=0.95, min_p=0.05)
    moved, warpers = move_warpers(config)
    assert [type(w) for w in warpers] == [TemperatureLogitsWarper, TopKLogitsWarper, SparseTopPLogitsWarper]
    assert (moved.temperature, moved.top_k, moved.top_p, moved.min_p) == (1.0, 0, 1.0, 0.05)
    assert (config.temperature, config.top_k, config.top_p) == (1.2, 50, 0.95)  # the original is untouched


@pytest.mark.parametrize("extra", [{}, {"min_p": 0.1}, {"typical_p": 0.8}, {"repetition_penalty": 1.3}])
def test_generate_samples_the_same_tokens_with_the_moved_warpers(tiny_checkpoint: Path, extra: dict) -> None:
    """Order matters (top-p after temperature and top-k, min-p and typical-p after top-p): same seed, same ids."""
    loaded = load_model(ModelSpec(str(tiny_checkpoint), device="cpu", dtype="fp32"))
    ids = loaded.tokenizer("The ghost screams in the old house", return_tensors="pt").input_ids
    config = GenerationConfig(do_sample=True, temperature=1.3, top_k=20, top_p=0.9, max_new_tokens=16,
                              min_new_tokens=16, pad_token_id=loaded.tokenizer.pad_token_id, **extra)
    moved, warpers = move_warpers(config)
    for seed in range(4):
        torch.manual_seed(seed)
        plain = loaded.model.generate(ids, generation_config=config)
        torch.manual_seed(seed)
        fast = loaded.model.generate(ids, generation_config=moved, logits_processor=warpers)
        assert torch.equal(plain, fast)


def test_the_engine_writes_the_same_passage_as_with_generate_s_own_warpers(
        tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same seed, same passage and the same token probabilities with the sparse top-p as with HF's full sort."""
    loaded = load_model(ModelSpec(str(tiny_checkpoint), device="cpu", dtype="fp32"))
    engine = StoryEngine(loaded)
    settings = SamplerSettings(max_new_tokens=16, seed=7, trim_sentences=False, top_k=10, top_p=0.8)
    request = GenerationRequest("horror", "The ghost", settings=settings, token_probs=3)
    calls = []
    sparse_call = SparseTopPLogitsWarper.__call__
    monkeypatch.setattr(SparseTopPLogitsWarper, "__call__",
                        lambda self, ids, scores: calls.append(1) or sparse_call(self, ids, scores))
    fast = engine.generate(request)
    assert len(calls) == fast.stats.new_tokens  # the engine sampled through the sparse top-p
    monkeypatch.setattr("storyterm.engine.generation.move_warpers", lambda config: (config, []))
    engine.forget_context()  # a prompt read from the kept cache differs from a fresh read by float rounding
    plain = engine.generate(request)
    assert fast.text == plain.text and fast.stats.new_tokens == plain.stats.new_tokens
    assert fast.tokens == plain.tokens
