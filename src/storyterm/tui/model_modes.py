"""What the editor offers for the loaded model: its genre tokens or genres in words, instruct mode for chat models,
the status bar's mode, and the checkpoint's sampling defaults under the writer's own settings (plain functions,
so the app only calls them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storyterm.engine.checkpoint_defaults import resolve_settings
from storyterm.engine.genres import FREE_GENRE, GenreChoice, genre_choice
from storyterm.engine.settings import SamplerSettings

if TYPE_CHECKING:
    from storyterm.config import Config
    from storyterm.engine.loading import LoadedModel


def offered_genres(loaded: LoadedModel, config: Config) -> GenreChoice:
    return genre_choice(loaded.genres, config.word_genres)


def instruct_on(loaded: LoadedModel | None, config: Config) -> bool:
    """On by default for a model with a chat template; the writer's switch (remembered in config.toml) wins."""
    if loaded is None or not loaded.has_chat_template:
        return False
    return True if config.instruct is None else config.instruct


def mode_label(loaded: LoadedModel | None, genre: str | None, instruct: bool) -> str:
    """For the status bar, next to the genre: empty for genre tokens (storyterm's own format) and free mode."""
    if loaded is None:
        return ""
    if instruct:
        return "instruct"
    return "in words" if not loaded.genres and genre is not None else ""


def remembered_genre(genre: str | None) -> str:
    """What config.toml keeps for a picked genre: free mode is remembered as an explicit choice."""
    return genre if genre is not None else FREE_GENRE


def draft_genre(remembered: str | None) -> str | None:
    return None if remembered == FREE_GENRE else remembered


def with_checkpoint_defaults(settings: SamplerSettings, loaded: LoadedModel, config: Config) -> SamplerSettings:
    """``settings`` with the checkpoint's generation_config.json values filled in where the writer set nothing
    (``config.settings_set``): the same rule as the command line (engine/checkpoint_defaults.py)."""
    unset = {key: value for key, value in loaded.checkpoint_settings.items() if key not in config.settings_set}
    if not unset:
        return settings
    current = settings.to_dict()
    writer = {key: current[key] for key in config.settings_set if key in current}
    filled = resolve_settings(writer, unset, base=settings)
    try:
        return filled.validate(loaded.context_window)
    except ValueError:
        return settings
