"""The built-in checkpoint shipped inside the package: complete, small, offline, and it writes in every genre."""

from __future__ import annotations

import json
import os
from pathlib import Path

from storyterm.engine.prompt import BOS_TOKEN, CLASSIC_GENRES, PAD_TOKEN, genre_token

BUILTIN = Path(__file__).resolve().parents[2] / "src" / "storyterm" / "models" / "builtin"


def test_builtin_checkpoint_is_complete_safetensors_and_small():
    names = {p.name for p in BUILTIN.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
            "generation_config.json", "README.md", "words.txt"} <= names
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in names)
    assert sum(p.stat().st_size for p in BUILTIN.iterdir()) <= 40 * 1024 * 1024
    generation = json.loads((BUILTIN / "generation_config.json").read_text())
    # The defaults picked with benchmarks/bench_invented_words.py (training/README.md): invented and repeated words.
    assert (generation["temperature"], generation["top_p"], generation["top_k"], generation["min_p"]) == (0.8, 0.95, 50, 0.05)
    assert generation["do_sample"] is True and generation["repetition_penalty"] == 1.2
    card = (BUILTIN / "README.md").read_text(encoding="utf-8")
    assert "## Sources and licences" in card and "CC BY-SA 4.0" in card and "CC0" in card


def test_builtin_loads_offline_and_generates_for_every_genre():
    import torch

    from storyterm.engine.generation import GenerationRequest, StoryEngine
    from storyterm.engine.loading import ModelSpec, load_model

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    loaded = load_model(ModelSpec(device="cpu"))
    assert loaded.genres == list(CLASSIC_GENRES)
    assert loaded.context_window == loaded.model.config.n_positions
    engine = StoryEngine(loaded)
    vocab = loaded.tokenizer.get_vocab()
    forbidden = {vocab[t] for t in (BOS_TOKEN, PAD_TOKEN, *(genre_token(g) for g in CLASSIC_GENRES))}
    assert forbidden <= set(engine.suppressed_token_ids)
    for index, genre in enumerate(CLASSIC_GENRES):
        settings = loaded.generation_defaults.with_changes(max_new_tokens=24, seed=index)
        request = GenerationRequest(genre=genre, story="The", settings=settings)
        result = engine.generate(request)
        assert result.texts[0].strip(), genre
        assert result.stats.new_tokens > 0
        # The sampled ids themselves never contain a genre, BOS or PAD token.
        prompt = torch.tensor([engine.prepare(request).input_ids])
        torch.manual_seed(index)
        with torch.inference_mode():
            output = loaded.model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt),
                                           generation_config=engine.generation_config(settings))
        assert not forbidden & set(output[0, prompt.shape[1]:].tolist()), genre
