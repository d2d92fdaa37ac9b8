"""The lorebook (world info): entries of background the model reads only while the story needs them.

An entry has keys and a text. It enters the prompt when one of its keys appears in the last ``scan_chars``
characters of the story — case-insensitive, as a whole word or phrase ("ring" does not match "bring"; "Lord Vane"
matches "lord  vane" across a line break) — or always, when it is marked always on.

Order: entries go into the prompt in the lorebook's own order (the writer arranges the list), right after the memory
and before the story. Budget: together they take at most ``token_budget`` tokens; an entry that no longer fits is
left out (the context viewer lists it) and later, shorter ones still go in. The prompt builder also keeps the
lorebook to half of the room the header, memory and author's note leave, so a long lorebook never pushes the story
out of the window (``prompt_builder.py``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import SettingsError

DEFAULT_SCAN_CHARS = 1000
DEFAULT_TOKEN_BUDGET = 256
MAX_ENTRIES = 500
MAX_KEYS = 50
MAX_KEY_CHARS = 100
MAX_ENTRY_CHARS = 4000
MAX_SCAN_CHARS = 100_000
MAX_TOKEN_BUDGET = 100_000


@dataclass(frozen=True)
class LorebookEntry:
    keys: tuple[str, ...] = ()
    text: str = ""
    always_on: bool = False

    @property
    def label(self) -> str:
        """How the entry is named on screen: its first key, else the start of its text."""
        if self.keys:
            return self.keys[0]
        words = " ".join(self.text.split())
        return words[:30] + ("…" if len(words) > 30 else "") or "(empty)"

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        keys = [r"\s+".join(re.escape(word) for word in key.split()) for key in self.keys if key.strip()]
        if not keys:
            return None
        return re.compile(r"(?<!\w)(?:" + "|".join(keys) + r")(?!\w)", re.IGNORECASE)

    def matches(self, story: str, scan_chars: int) -> bool:
        """A key in the last ``scan_chars`` characters of ``story`` (a word cut by the scan start does not count)."""
        if self.always_on:
            return True
        pattern = self._pattern
        return pattern is not None and pattern.search(story, max(0, len(story) - scan_chars)) is not None

    def to_dict(self) -> dict[str, Any]:
        return {"keys": list(self.keys), "text": self.text, "always_on": self.always_on}


@dataclass(frozen=True)
class Lorebook:
    entries: tuple[LorebookEntry, ...] = ()
    scan_chars: int = DEFAULT_SCAN_CHARS  # how far back from the story's end keys are looked for
    token_budget: int = DEFAULT_TOKEN_BUDGET  # the most tokens all entries in the prompt take together

    def __bool__(self) -> bool:
        return bool(self.entries)

    def active(self, story: str) -> list[LorebookEntry]:
        """The entries the story calls for (always-on ones included), in the lorebook's order."""
        return [entry for entry in self.entries if entry.text.strip() and entry.matches(story, self.scan_chars)]

    def is_default(self) -> bool:
        return self == Lorebook()

    def to_dict(self) -> dict[str, Any]:
        return {"scan_chars": self.scan_chars, "token_budget": self.token_budget,
                "entries": [entry.to_dict() for entry in self.entries]}

    @classmethod
    def from_dict(cls, data: Any) -> Lorebook:
        """From ``to_dict`` output, or a bare list of entries; SettingsError with a one-line message."""
        if isinstance(data, list):
            data = {"entries": data}
        if not isinstance(data, dict):
            raise SettingsError("a lorebook must be a JSON object with \"entries\" (or a list of entries)")
        unknown = sorted(set(data) - {"scan_chars", "token_budget", "entries"})
        if unknown:
            raise SettingsError(f"unknown lorebook field {unknown[0]!r} (known: entries, scan_chars, token_budget)")
        raw_entries = data.get("entries", [])
        if not isinstance(raw_entries, list):
            raise SettingsError("the lorebook's \"entries\" must be a list")
        entries = tuple(_entry(raw, index) for index, raw in enumerate(raw_entries))
        book = cls(entries, _whole(data, "scan_chars", DEFAULT_SCAN_CHARS),
                   _whole(data, "token_budget", DEFAULT_TOKEN_BUDGET))
        book.validate()
        return book

    def validate(self) -> Lorebook:
        if len(self.entries) > MAX_ENTRIES:
            raise SettingsError(f"a lorebook holds at most {MAX_ENTRIES} entries, got {len(self.entries)}")
        if not 1 <= self.scan_chars <= MAX_SCAN_CHARS:
            raise SettingsError(f"lorebook scan_chars must be from 1 to {MAX_SCAN_CHARS}, got {self.scan_chars}")
        if not 0 <= self.token_budget <= MAX_TOKEN_BUDGET:
            raise SettingsError(f"lorebook token_budget must be from 0 to {MAX_TOKEN_BUDGET}, got {self.token_budget}")
        for number, entry in enumerate(self.entries, 1):
            if len(entry.keys) > MAX_KEYS:
                raise SettingsError(f"lorebook entry {number}: at most {MAX_KEYS} keys")
            for key in entry.keys:
                if not key.strip() or len(key) > MAX_KEY_CHARS:
                    raise SettingsError(f"lorebook entry {number}: a key must be 1 to {MAX_KEY_CHARS} characters, "
                                        f"got {key[:20]!r}")
            if len(entry.text) > MAX_ENTRY_CHARS:
                raise SettingsError(f"lorebook entry {number}: the text must be at most {MAX_ENTRY_CHARS} characters")
            if not entry.keys and not entry.always_on:
                raise SettingsError(f"lorebook entry {number} ({entry.label}) has no keys and is not always on, "
                                    "so it would never be read")
        return self


def parse_keys(text: str) -> tuple[str, ...]:
    """``"Anna, the captain ,"`` → ``("Anna", "the captain")``: keys as the writer types them, comma-separated."""
    return tuple(" ".join(key.split()) for key in text.split(",") if key.strip())


def load_lorebook(path: Path) -> Lorebook:
    """Read a lorebook JSON file; SettingsError with a one-line message naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise SettingsError(f"cannot read lorebook {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"lorebook {path} is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise SettingsError(f"lorebook {path} is not valid JSON: {error.msg} (line {error.lineno})") from None
    try:
        return Lorebook.from_dict(data)
    except SettingsError as error:
        raise SettingsError(f"lorebook {path}: {error}") from None


def _entry(raw: Any, index: int) -> LorebookEntry:
    number = index + 1
    if not isinstance(raw, dict):
        raise SettingsError(f"lorebook entry {number} must be an object with \"keys\" and \"text\"")
    unknown = sorted(set(raw) - {"keys", "text", "always_on"})
    if unknown:
        raise SettingsError(f"lorebook entry {number}: unknown field {unknown[0]!r} (known: keys, text, always_on)")
    keys = raw.get("keys", [])
    if isinstance(keys, str):
        keys = list(parse_keys(keys))
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise SettingsError(f"lorebook entry {number}: \"keys\" must be a list of texts")
    text = raw.get("text", "")
    if not isinstance(text, str):
        raise SettingsError(f"lorebook entry {number}: \"text\" must be text")
    always_on = raw.get("always_on", False)
    if not isinstance(always_on, bool):
        raise SettingsError(f"lorebook entry {number}: \"always_on\" must be true or false")
    return LorebookEntry(tuple(keys), text, always_on)


def _whole(data: dict, key: str, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"lorebook {key} must be a whole number, got {value!r}")
    return value
