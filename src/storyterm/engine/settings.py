"""Sampler settings: defaults, named presets, and validation with one clear message per bad value."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .errors import SettingsError

MAX_ALTERNATIVES = 8


@dataclass(frozen=True)
class SamplerSettings:
    """How a passage is sampled. Defaults are the seed app's: sampling on, temperature 1.2, top-p 0.95,
    top-k 50, repetition penalty 1.1, about 100 new tokens. min-p (0 = off) and typical-p (1 = off) are off.
    ``word_guard``: keep lower-case and Title-case words to spellings of the training text or the prompt
    (engine/word_guard.py); it only acts
    for a checkpoint that ships ``words.txt`` (the built-in model)."""

    max_new_tokens: int = 100
    temperature: float = 1.2
    top_k: int = 50
    top_p: float = 0.95
    repetition_penalty: float = 1.1
    do_sample: bool = True
    seed: int | None = None
    num_alternatives: int = 1
    min_p: float = 0.0
    typical_p: float = 1.0
    word_guard: bool = True
    trim_sentences: bool = True  # end a passage at a sentence end (finish it within a grace, else cut the tail)

    def validate(self, context_window: int | None = None) -> SamplerSettings:
        """Raise SettingsError naming the first bad value; return self so calls chain."""
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise SettingsError(f"{field.name} must be a finite number, got {value}")
        _check_int("max_new_tokens", self.max_new_tokens, minimum=1)
        if context_window is not None and self.max_new_tokens >= context_window:
            raise SettingsError(
                f"max_new_tokens must be below the model's context window of {context_window} tokens, "
                f"got {self.max_new_tokens}"
            )
        _check_int("top_k", self.top_k, minimum=0)
        _check_int("num_alternatives", self.num_alternatives, minimum=1, maximum=MAX_ALTERNATIVES)
        if self.seed is not None:
            _check_int("seed", self.seed, minimum=0, maximum=2**32 - 1)
        for name in ("do_sample", "trim_sentences"):
            if not isinstance(getattr(self, name), bool):
                raise SettingsError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.do_sample:
            if _not_number(self.temperature) or self.temperature <= 0:
                raise SettingsError(f"temperature must be > 0 when sampling, got {self.temperature}")
            if self.temperature > 10:
                raise SettingsError(f"temperature must be at most 10, got {self.temperature}")
        if _not_number(self.top_p) or not 0 < self.top_p <= 1:
            raise SettingsError(f"top_p must be in (0, 1], got {self.top_p}")
        if _not_number(self.min_p) or not 0 <= self.min_p <= 1:
            raise SettingsError(f"min_p must be between 0 and 1 (0 = off), got {self.min_p}")
        if _not_number(self.typical_p) or not 0 < self.typical_p <= 1:
            raise SettingsError(f"typical_p must be in (0, 1] (1 = off), got {self.typical_p}")
        if not isinstance(self.word_guard, bool):
            raise SettingsError(f"word_guard must be true or false, got {self.word_guard!r}")
        if _not_number(self.repetition_penalty) or not 0 < self.repetition_penalty <= 10:
            raise SettingsError(f"repetition_penalty must be in (0, 10], got {self.repetition_penalty}")
        if not self.do_sample and self.num_alternatives > 1:
            raise SettingsError("num_alternatives > 1 needs sampling on: greedy decoding gives one answer")
        return self

    def with_changes(self, **changes: Any) -> SamplerSettings:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplerSettings:
        """Build from a mapping (config file, draft file); unknown keys are ignored, types are not coerced."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _not_number(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, (int, float))


def _check_int(name: str, value: Any, *, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"{name} must be a whole number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise SettingsError(f"{name} must be {bound}, got {value}")


DEFAULT_SETTINGS = SamplerSettings()

PRESETS: dict[str, SamplerSettings] = {
    # The seed app's settings: lively, sometimes wild.
    "classic": DEFAULT_SETTINGS,
    # Stays on topic: cooler temperature, tighter nucleus.
    "focused": SamplerSettings(temperature=0.8, top_k=40, top_p=0.9, repetition_penalty=1.15),
    # More surprising turns for brainstorming.
    "wild": SamplerSettings(temperature=1.5, top_k=0, top_p=0.98, repetition_penalty=1.05),
}


def preset(name: str) -> SamplerSettings:
    try:
        return PRESETS[name]
    except KeyError:
        raise SettingsError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
