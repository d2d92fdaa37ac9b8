"""The writer's settings win: a checkpoint's ``generation_config.json`` only fills what the writer left unset.

Order, lowest first: storyterm's defaults (the seed app's), the checkpoint's file, the writer (CLI flags, a preset,
the editor's panel and config.toml). Two rules on top:

- Passage length is never taken from the file: checkpoints often say ``max_new_tokens: 2048`` for chat answers,
  and a co-writing passage should be a few sentences (``DEFAULT_SETTINGS.max_new_tokens``) unless the writer says.
- A writer who sets a sampling knob (temperature, top-k, top-p, several alternatives) without saying ``greedy``
  gets sampling, even when the file says ``do_sample: false`` — otherwise the knob would silently do nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import SettingsError
from .settings import DEFAULT_SETTINGS, SamplerSettings

GENERATION_CONFIG_FILE = "generation_config.json"
# What a checkpoint's file may set (not max_new_tokens: see the module docstring).
CHECKPOINT_KEYS = ("do_sample", "temperature", "top_k", "top_p", "repetition_penalty", "min_p", "typical_p")
# Knobs that only mean something when sampling: setting one asks for sampling.
SAMPLING_KNOBS = ("temperature", "top_k", "top_p", "min_p", "typical_p")


def checkpoint_values(directory: Path | None) -> dict[str, Any]:
    """The sampler values a checkpoint's generation_config.json sets, each checked on its own (a bad one is skipped)."""
    if directory is None:
        return {}
    try:
        data = json.loads((directory / GENERATION_CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return checked_values(data)


def checked_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """The CHECKPOINT_KEYS of ``data`` whose values are valid settings (a bad one is skipped)."""
    values: dict[str, Any] = {}
    for key in CHECKPOINT_KEYS:
        value = data.get(key)
        if value is None:
            continue
        try:
            DEFAULT_SETTINGS.with_changes(**{key: value}).validate()
        except (SettingsError, TypeError):
            continue
        values[key] = value
    return values


def resolve_settings(writer: Mapping[str, Any], checkpoint: Mapping[str, Any],
                     base: SamplerSettings = DEFAULT_SETTINGS) -> SamplerSettings:
    """``base``, then the checkpoint's values, then the writer's (only the keys the writer set)."""
    values = {key: value for key, value in checkpoint.items() if key in CHECKPOINT_KEYS}
    values.update(writer)
    if "do_sample" not in writer and values.get("do_sample") is False and _asks_for_sampling(writer):
        values["do_sample"] = True
    return base.with_changes(**values)


def _asks_for_sampling(writer: Mapping[str, Any]) -> bool:
    return any(key in writer for key in SAMPLING_KNOBS) or (writer.get("num_alternatives") or 1) > 1
