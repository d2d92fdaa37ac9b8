"""Fixtures shared by the engine tests: one tiny GGUF file loaded through llama.cpp, and its torch twin."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyterm.engine.loading import LoadedModel, ModelSpec, load_model


@pytest.fixture(scope="module")
def gguf_loaded(tiny_gguf: Path) -> LoadedModel:
    return load_model(ModelSpec(str(tiny_gguf)))


@pytest.fixture(scope="module")
def torch_loaded(tiny_gguf: Path) -> LoadedModel:
    """The same weights as ``gguf_loaded``, from the checkpoint the GGUF file was converted from."""
    return load_model(ModelSpec(str(tiny_gguf.parent / "checkpoint"), device="cpu", dtype="fp32"))
