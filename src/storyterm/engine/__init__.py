"""Model loading, the prompt format and streaming generation. Imports no Textual."""

from .errors import (
    DeviceError,
    EngineBusyError,
    ModelLoadError,
    SettingsError,
    StorytermError,
    UnknownGenreError,
)
from .settings import DEFAULT_SETTINGS, PRESETS, SamplerSettings, preset

__all__ = [
    "DEFAULT_SETTINGS",
    "PRESETS",
    "DeviceError",
    "EngineBusyError",
    "ModelLoadError",
    "SamplerSettings",
    "SettingsError",
    "StorytermError",
    "UnknownGenreError",
    "preset",
]
