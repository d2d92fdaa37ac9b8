"""The user's config file: remembered sampler settings, preset, genre, theme, key bindings, the genres offered in
words for models without genre tokens (``[genres]``: list and header template) and instruct mode.

Lives at ``platformdirs.user_config_path("storyterm") / "config.toml"``; read with ``tomllib`` and written back
with ``tomli_w`` when the app remembers a setting. A broken or half-valid file never stops the app: each bad
part is replaced by its default and reported as a one-line warning.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from storyterm.engine.errors import SettingsError
from storyterm.engine.genres import (
    DEFAULT_GENRE_TEMPLATE,
    DEFAULT_WORD_GENRES,
    WordGenres,
    check_genre_list,
    check_template,
)
from storyterm.engine.settings import DEFAULT_SETTINGS, PRESETS, SamplerSettings

CONFIG_FILE_NAME = "config.toml"
# What choosing a preset sets (the other fields stay the writer's or the checkpoint's).
PRESET_FIELDS = frozenset({"temperature", "top_k", "top_p", "min_p", "typical_p", "repetition_penalty", "do_sample"})
KNOWN_TABLES = {"general", "genres", "settings", "keys"}
GENERAL_KEYS = {"preset", "genre", "theme", "instruct"}

# Binding id → default keys (comma-separated alternatives, Textual key names). The ids are the ones used in the
# ``[keys]`` table of the config file and by ``App.set_keymap``.
DEFAULT_KEYS: dict[str, str] = {
    "generate": "ctrl+g",
    "accept": "tab",
    "stop": "escape",
    "regenerate": "ctrl+r",
    "next_alternative": "f8,alt+right_square_bracket",
    "previous_alternative": "f7,alt+left_square_bracket",
    "extend": "ctrl+e",
    "story_tree": "f12",
    "undo": "ctrl+z",
    "redo": "ctrl+y",
    "save": "ctrl+s",
    "save_as": "f4",
    "open": "ctrl+o",
    "new": "ctrl+n",
    "quit": "ctrl+q",
    "help": "f1",
    "focus_mode": "f3",
    "switch_model": "f2",
    "probability_view": "f6",
    "token_candidates": "ctrl+l",
    "context_viewer": "f9",
    "lorebook": "f5",
    "story_context": "f10",
}


def default_config_path() -> Path:
    return platformdirs.user_config_path("storyterm") / CONFIG_FILE_NAME


@dataclass
class Config:
    settings: SamplerSettings = DEFAULT_SETTINGS
    preset: str | None = "classic"       # None when the settings were edited away from every preset
    genre: str | None = None             # last genre picked
    theme: str | None = None
    keys: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_KEYS))
    word_genres: WordGenres = field(default_factory=WordGenres)  # [genres] list + template
    instruct: bool | None = None         # None: instruct mode on for models with a chat template
    # Sampler fields the writer set (in the file's [settings] or a preset, or in the panel): a checkpoint's
    # generation_config.json fills only the others (engine/checkpoint_defaults.py)
    settings_set: frozenset[str] = frozenset()

    def keymap_overrides(self) -> dict[str, str]:
        """Only the bindings the user changed, for ``App.set_keymap``."""
        return {name: keys for name, keys in self.keys.items() if DEFAULT_KEYS.get(name) != keys}

    def to_toml_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        general: dict[str, Any] = {}
        if self.preset is not None and PRESET_FIELDS <= self.settings_set:  # chosen, not just the default
            general["preset"] = self.preset
        if self.genre is not None:
            general["genre"] = self.genre
        if self.theme is not None:
            general["theme"] = self.theme
        if self.instruct is not None:
            general["instruct"] = self.instruct
        if general:
            data["general"] = general
        # TOML has no null: an unset seed is simply left out. Only what the writer set is written, so a
        # checkpoint's own defaults can fill the rest.
        data["settings"] = {k: v for k, v in self.settings.to_dict().items()
                            if v is not None and k in self.settings_set}
        data["genres"] = {"list": list(self.word_genres.genres), "template": self.word_genres.template}
        data["keys"] = dict(self.keys)
        return data

    def writer_settings(self) -> dict[str, Any]:
        """The sampler values the writer set, for ``engine.checkpoint_defaults.resolve_settings``."""
        values = self.settings.to_dict()
        return {key: values[key] for key in self.settings_set if key in values}


def load_config(path: Path | None = None) -> tuple[Config, list[str]]:
    """Read the config file; returns the config and one-line warnings for the parts that were ignored."""
    path = path or default_config_path()
    config = Config()
    warnings: list[str] = []
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return config, warnings
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return config, [f"config {path}: not read ({_one_line(exc)}); using defaults"]

    for table in raw:
        if table not in KNOWN_TABLES:
            warnings.append(f"config {path}: unknown table or key {table!r} ignored")
    general = raw.get("general", {})
    if isinstance(general, dict):
        warnings += [f"config {path}: unknown key {key!r} in [general] ignored"
                     for key in general if key not in GENERAL_KEYS]
        preset_name = general.get("preset")
        if isinstance(preset_name, str) and preset_name in PRESETS:
            config.preset = preset_name
        elif preset_name is not None:
            warnings.append(f"config {path}: unknown preset {preset_name!r} ignored")
        if isinstance(general.get("genre"), str):
            config.genre = general["genre"]
        if isinstance(general.get("theme"), str):
            config.theme = general["theme"]
        if isinstance(general.get("instruct"), bool):
            config.instruct = general["instruct"]
        elif general.get("instruct") is not None:
            warnings.append(f"config {path}: instruct must be true or false; ignored")
    preset_chosen = isinstance(general, dict) and config.preset is not None and "preset" in general

    genres_table = raw.get("genres")
    if isinstance(genres_table, dict):
        warnings += [f"config {path}: unknown key {key!r} in [genres] ignored"
                     for key in genres_table if key not in ("list", "template")]
        try:
            genre_list = check_genre_list(genres_table.get("list", list(DEFAULT_WORD_GENRES)))
            template = check_template(genres_table.get("template", DEFAULT_GENRE_TEMPLATE))
        except ValueError as exc:
            warnings.append(f"config {path}: [genres] ignored: {_one_line(exc)}")
        else:
            config.word_genres = WordGenres(genre_list, template)

    settings_table = raw.get("settings")
    if isinstance(settings_table, dict):
        setting_names = set(DEFAULT_SETTINGS.to_dict())
        warnings += [f"config {path}: unknown setting {key!r} ignored"
                     for key in settings_table if key not in setting_names]
        try:
            base = PRESETS.get(config.preset or "", DEFAULT_SETTINGS)
            known = _known_settings(settings_table)
            config.settings = replace(base, **known).validate()
            config.settings_set = frozenset(known) | (PRESET_FIELDS if preset_chosen else frozenset())
            if config.preset is not None and config.settings != PRESETS[config.preset]:
                config.preset = None
        except (SettingsError, TypeError) as exc:
            warnings.append(f"config {path}: [settings] ignored: {_one_line(exc)}")
    elif config.preset is not None:
        config.settings = PRESETS[config.preset]
        config.settings_set = PRESET_FIELDS if preset_chosen else frozenset()

    keys_table = raw.get("keys")
    if isinstance(keys_table, dict):
        for name, keys in keys_table.items():
            if name not in DEFAULT_KEYS:
                warnings.append(f"config {path}: unknown key binding {name!r} ignored")
            elif not isinstance(keys, str) or not keys.strip():
                warnings.append(f"config {path}: key binding {name!r} must be a non-empty string")
            else:
                keys = ",".join(part.strip() for part in keys.split(","))
                problem = next(filter(None, (key_problem(key) for key in keys.split(","))), None)
                if problem:
                    warnings.append(f"config {path}: {name} = {keys!r}: {problem}; using {DEFAULT_KEYS[name]!r}")
                else:
                    config.keys[name] = keys
        warnings += [f"config {path}: {clash}" for clash in _resolve_clashes(config.keys)]
    return config, warnings


MODIFIERS = {"ctrl", "alt", "shift", "meta", "super", "hyper"}


def key_problem(key: str) -> str | None:
    """Why ``key`` (a Textual key name such as ``ctrl+g`` or ``f8``) cannot be an action's key, or None."""
    from textual.keys import Keys, key_to_character

    *modifiers, base = key.split("+")
    if not base or any(modifier not in MODIFIERS for modifier in modifiers):
        return f"{key!r} is not a key name"
    named = {member.value.rsplit("+", 1)[-1] for member in Keys}
    character = base if len(base) == 1 else key_to_character(base)
    if base not in named and character is None:
        return f"{key!r} is not a key name"
    if set(modifiers) <= {"shift"} and character is not None and character.isprintable():
        return f"{key!r} types a character (it would fire while writing); add ctrl+ or alt+, or use an f-key"
    return None


def _resolve_clashes(keys: dict[str, str]) -> list[str]:
    """Two actions on one key: the one the user changed goes back to its default (one warning each)."""
    warnings: list[str] = []
    owner: dict[str, str] = {}
    for name in sorted(keys, key=lambda n: keys[n] != DEFAULT_KEYS[n]):  # defaults claim their keys first
        clash = next((owner[k] for k in keys[name].split(",") if k in owner), None)
        if clash is not None and keys[name] != DEFAULT_KEYS[name]:
            warnings.append(f"{name} = {keys[name]!r} is already {clash}'s key; using {DEFAULT_KEYS[name]!r}")
            keys[name] = DEFAULT_KEYS[name]
        for key in keys[name].split(","):
            owner.setdefault(key, name)
    return warnings


def save_config(config: Config, path: Path | None = None) -> None:
    """Write the config the way drafts are written: a unique temp file, fsynced, then renamed (two windows
    saving at once never clash, a crash never leaves half a file). Raises DraftFileError."""
    from storyterm.story.atomic_write import write_atomic

    write_atomic(path or default_config_path(), tomli_w.dumps(config.to_toml_dict()).encode("utf-8"))


def _known_settings(table: dict[str, Any]) -> dict[str, Any]:
    known = set(DEFAULT_SETTINGS.to_dict())
    return {k: v for k, v in table.items() if k in known}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
