"""Which genres a model offers, and how a genre reaches the prompt.

Two ways:

- **Genre tokens** (``<BOS> <horror> story…``): only for checkpoints trained on that layout. A checkpoint says so
  in one of two ways: storyterm's training writes the genre list into ``training_info.json`` (``"genres"``), and
  the original project's checkpoints (``gpt2-genre-story-generator``) have a ``<BOS>`` token next to their
  ``<genre>`` special tokens. Other ``<name>`` special tokens (chat and code markers such as ``<repo_name>``,
  ``<file_sep>``, ``<start_of_turn>``) are never genres.
- **Genres in words** for every other model: a header sentence from a template (``This is a horror story.``),
  the way the original app's title prompt (``"Heat" is a horror film about``) conditions a plain language model.
  The genre list and the template are the writer's (``config.toml``); these are the defaults.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .prompt import BOS_TOKEN, CLASSIC_GENRES, EOS_TOKEN, PAD_TOKEN, genres_from_special_tokens, is_valid_genre

# The six genres the original project was trained with, then the ones a writer expects from any model.
DEFAULT_WORD_GENRES: tuple[str, ...] = (
    *CLASSIC_GENRES, "comedy", "romance", "western", "fantasy", "mystery", "adventure",
)
# {genre} → "sci-fi", {a_genre} → "a sci-fi" / "an action" (article included, so the sentence reads right).
DEFAULT_GENRE_TEMPLATE = "This is {a_genre} story."
FREE_GENRE = "free"  # what a writer types (``--genre free``) or a config keeps to ask for free mode explicitly

TRAINING_INFO_FILE = "training_info.json"

# Special tokens of chat and code models that look like ``<name>``: never genres, whatever the layout.
_NOT_GENRES = frozenset({
    "repo_name", "reponame", "file_sep", "filename", "gh_stars", "issue_start", "issue_comment", "issue_closed",
    "jupyter_start", "jupyter_text", "jupyter_code", "jupyter_output", "jupyter_script", "empty_output",
    "commit_before", "commit_msg", "commit_after", "fim_prefix", "fim_middle", "fim_suffix", "fim_pad",
    "start_of_turn", "end_of_turn", "start_of_image", "end_of_image", "image_soft_token", "mask", "unk", "pad",
    "bos", "eos", "sep", "cls", "s", "think", "tool_call", "tool_response", "im_start", "im_end", "endoftext",
})


@dataclass(frozen=True)
class WordGenres:
    """The genres offered for a model without genre tokens, and the header sentence that names one."""

    genres: tuple[str, ...] = DEFAULT_WORD_GENRES
    template: str = DEFAULT_GENRE_TEMPLATE

    def header(self, genre: str) -> str:
        return genre_sentence(self.template, genre)


DEFAULT_WORD_GENRE_SETTINGS = WordGenres()


def genre_words(genre: str) -> str:
    """``"sci_fi"`` → ``"sci-fi"``: how a genre name reads in a sentence."""
    return genre.replace("_", "-")


def with_article(words: str) -> str:
    return f"{'an' if words[:1].lower() in 'aeiou' else 'a'} {words}"


def genre_sentence(template: str, genre: str) -> str:
    """Fill a genre header template: ``{genre}`` (``sci-fi``) and ``{a_genre}`` (``a sci-fi``)."""
    words = genre_words(genre)
    return template.replace("{a_genre}", with_article(words)).replace("{genre}", words).strip()


def check_template(template: Any) -> str:
    """The template if usable, else ValueError with a one-line reason."""
    if not isinstance(template, str) or not template.strip():
        raise ValueError("the genre template must be a non-empty string")
    if "{genre}" not in template and "{a_genre}" not in template:
        raise ValueError("the genre template must contain {genre} or {a_genre}")
    return template


def check_genre_list(genres: Any) -> tuple[str, ...]:
    """Genre names from a config list (``"Sci-Fi"`` → ``sci_fi``); ValueError for an unusable list."""
    from .prompt import normalize_genre

    if not isinstance(genres, list) or not genres:
        raise ValueError("the genre list must be a non-empty list of names")
    names: list[str] = []
    for item in genres:
        if not isinstance(item, str):
            raise ValueError(f"genre {item!r} is not a string")
        name = normalize_genre(item)
        if name == FREE_GENRE:
            raise ValueError(f"{FREE_GENRE!r} is free mode, not a genre")
        if name not in names:
            names.append(name)
    return tuple(names)


# ---------------------------------------------------------------------------------------------------------------------
# Token genres: does this checkpoint really have them?


def token_genres(tokenizer: Any, directory: Path | None = None) -> list[str]:
    """The genre tokens a checkpoint was trained with, in training order; ``[]`` for any other model."""
    vocab = tokenizer.get_vocab()
    trained = _genres_from_training_info(directory)
    if trained is not None:
        return [genre for genre in trained if f"<{genre}>" in vocab]
    if BOS_TOKEN not in vocab:
        return []  # not the <BOS> <genre> layout: its <name> tokens belong to something else
    named = {str(getattr(tokenizer, attr, None)) for attr in getattr(tokenizer, "SPECIAL_TOKENS_ATTRIBUTES", ())}
    named |= {BOS_TOKEN, EOS_TOKEN, PAD_TOKEN}
    return [g for g in genres_from_special_tokens(t for t in _extra_special_tokens(tokenizer) if t not in named)
            if g not in _NOT_GENRES]


def _extra_special_tokens(tokenizer: Any) -> Iterable[str]:
    extra = getattr(tokenizer, "extra_special_tokens", None) or []
    if isinstance(extra, dict):
        extra = list(extra.values())
    return [str(token) for token in extra]


def _genres_from_training_info(directory: Path | None) -> list[str] | None:
    """``training_info.json``'s ``genres`` (written by storyterm's ``training/``), or None without one."""
    if directory is None:
        return None
    try:
        data = json.loads((directory / TRAINING_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    genres = data.get("genres") if isinstance(data, dict) else None
    if not isinstance(genres, list):
        return None
    return [g for g in genres if isinstance(g, str) and is_valid_genre(g) and g not in _NOT_GENRES]


# ---------------------------------------------------------------------------------------------------------------------
# Choosing


@dataclass(frozen=True)
class GenreChoice:
    """What a model offers: ``mode`` is ``"tokens"`` (genre tokens) or ``"words"`` (a header sentence)."""

    mode: str
    genres: tuple[str, ...] = field(default_factory=tuple)

    @property
    def in_words(self) -> bool:
        return self.mode == "words"

    @property
    def free_allowed(self) -> bool:
        """Free mode (no genre) is a choice for a words model; a genre-token model was trained with one always."""
        return self.mode == "words" or not self.genres


def genre_choice(model_genres: Sequence[str], word_genres: WordGenres = DEFAULT_WORD_GENRE_SETTINGS) -> GenreChoice:
    """``model_genres``: ``LoadedModel.genres`` (its genre tokens)."""
    if model_genres:
        return GenreChoice("tokens", tuple(model_genres))
    return GenreChoice("words", tuple(word_genres.genres))
