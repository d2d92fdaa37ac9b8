"""Shared fixtures: tiny, offline GPT-2 checkpoints built in-process (random weights, a BPE trained on a few lines)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from storyterm.engine.prompt import CLASSIC_GENRES, training_line

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
    from transformers import GPT2Config, GPT2LMHeadModel

    from training.train import train_tokenizer

    # The same tokenizer recipe as a real from-scratch training run, on a few lines.
    lines = [training_line(g, text) for g in (genres or [None]) for text in TINY_CORPUS]
    tokenizer = train_tokenizer(lines, list(genres or ()), vocab_size, model_max_length=n_positions)
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


def build_tiny_gguf(folder: Path, genres: Sequence[str] | None = None, outtype: str = "f32", **kwargs) -> Path:
    """A tiny checkpoint (``build_tiny_checkpoint``) and the same weights as ``folder/model.gguf``."""
    pytest.importorskip("gguf", reason="writing GGUF files needs the gguf package (pip install gguf)")
    from training.export_gguf import export_gguf

    checkpoint = build_tiny_checkpoint(folder / "checkpoint", genres, **kwargs)
    return export_gguf(checkpoint, folder / f"model-{outtype}.gguf", outtype)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GGUF file without genre tokens (beside it: ``checkpoint/``, the same weights for transformers)."""
    return build_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf"))


@pytest.fixture(scope="session")
def model_zoo(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``model_zoo("mistral-sliding")``: the path of that tiny family checkpoint (tests/model_zoo.py), built once per
    session. Read-only: do not modify it in tests."""
    from tests.model_zoo import build

    folder = tmp_path_factory.mktemp("zoo")
    return lambda family: build(family, folder)


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
