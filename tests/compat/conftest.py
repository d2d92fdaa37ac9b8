"""Fixtures of the compatibility matrix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from storyterm.engine.loading import LoadedModel, ModelSpec, load_model


@pytest.fixture(scope="module")
def loaded_models() -> dict[str, LoadedModel]:
    return {}


@pytest.fixture
def loaded(model_zoo: Callable[[str], Path], loaded_models: dict[str, LoadedModel]) -> Callable[[str], LoadedModel]:
    """The family's checkpoint loaded in fp32 on the CPU, once per test module (shared: do not modify it)."""

    def load(family: str) -> LoadedModel:
        if family not in loaded_models:
            loaded_models[family] = load_model(ModelSpec(str(model_zoo(family)), device="cpu", dtype="fp32"))
        return loaded_models[family]

    return load
