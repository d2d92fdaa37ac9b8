"""Shared fixtures: tiny, offline GPT-2 checkpoints built in-process (random weights, a BPE trained on a few lines)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from storyterm.engine.prompt import (
    BOS_TOKEN,
    CLASSIC_GENRES,
    EOS_TOKEN,
    PAD_TOKEN,
    genre_token,
    training_line,
)

TINY_CORPUS = [
    "A man walks into a bar and orders a drink while the city sleeps.",
    "The ghost screams in the old house and the family runs into the night.",
    "Captain Vega pilots the starship through the asteroid field toward Mars.",
    "The detective finds a letter hidden under the floor of the hotel room.",
    "Batman and Superman fight the army of robots above Gotham city.",
    "After a robbery gone wrong, the crew hides in a warehouse by the docks.",
    "She falls in love with the painter who lives across the street.",
    "In the future, machines rule the world and people live underground.",
]


def build_tiny_checkpoint(
    path: Path,
    genres: Sequence[str] | None = CLASSIC_GENRES,
    *,
    n_layer: int = 2,
    n_embd: int = 32,
    n_head: int = 2,
    n_positions: int = 128,
    vocab_size: int = 400,
    seed: int = 0,
) -> Path:
    """Save a real GPT2LMHeadModel + fast tokenizer to ``path``; ``genres=None`` gives a checkpoint with no genre
    tokens (free mode)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    genre_tokens = [genre_token(g) for g in genres or ()]
    lines = [training_line(g, text) for g in (genres or [None]) for text in TINY_CORPUS]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, *genre_tokens],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(lines, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=genre_tokens,
        model_max_length=n_positions,
    )
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint with the six classic genre tokens. Read-only: do not modify it in tests."""
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-classic"))


@pytest.fixture
def make_tiny_checkpoint(tmp_path: Path) -> Callable[..., Path]:
    """Factory for custom checkpoints: ``make_tiny_checkpoint(genres=["romance"], n_positions=64)``."""
    counter = iter(range(1000))

    def make(**kwargs) -> Path:
        return build_tiny_checkpoint(tmp_path / f"tiny-{next(counter)}", **kwargs)

    return make


@pytest.fixture(autouse=True)
def _offline_and_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test runs offline, with config, data and HF cache directories in a temp folder."""
    home = tmp_path_factory.getbasetemp() / "home"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
