"""Model loading, the prompt format and streaming generation. Imports no Textual.

``loading`` and ``generation`` import torch/transformers, so their names are resolved lazily: ``import
storyterm.engine`` stays fast for ``storyterm --help``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    DeviceError,
    EngineBusyError,
    ModelLoadError,
    SettingsError,
    StorytermError,
    UnknownGenreError,
)
from .settings import DEFAULT_SETTINGS, PRESETS, SamplerSettings, preset

if TYPE_CHECKING:
    from .generation import (
        GenerationRequest,
        GenerationResult,
        GenerationStats,
        GenerationStream,
        StoryEngine,
    )
    from .loading import BUILTIN, LoadedModel, ModelSpec, list_models, load_model

_LAZY = {
    "BUILTIN": "loading",
    "LoadedModel": "loading",
    "ModelSpec": "loading",
    "list_models": "loading",
    "load_model": "loading",
    "GenerationRequest": "generation",
    "GenerationResult": "generation",
    "GenerationStats": "generation",
    "GenerationStream": "generation",
    "StoryEngine": "generation",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "BUILTIN",
    "DEFAULT_SETTINGS",
    "PRESETS",
    "DeviceError",
    "EngineBusyError",
    "GenerationRequest",
    "GenerationResult",
    "GenerationStats",
    "GenerationStream",
    "LoadedModel",
    "ModelLoadError",
    "ModelSpec",
    "SamplerSettings",
    "SettingsError",
    "StoryEngine",
    "StorytermError",
    "UnknownGenreError",
    "list_models",
    "load_model",
    "preset",
]
