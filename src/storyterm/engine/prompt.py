"""The prompt format shared by generation and training.

Training lines are ``<BOS> <genre> story… <EOS>``; a generation prompt is the same line without the end:
``<BOS> <genre> optional prompt…``. ``training/`` imports everything here instead of copying it, so the
model always sees at inference exactly the byte layout it was trained on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

BOS_TOKEN = "<BOS>"
EOS_TOKEN = "<EOS>"
PAD_TOKEN = "<PAD>"
STRUCTURAL_TOKENS = (BOS_TOKEN, EOS_TOKEN, PAD_TOKEN)

CLASSIC_GENRES = ("superhero", "sci_fi", "horror", "action", "drama", "thriller")

_GENRE_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_GENRE_TOKEN = re.compile(r"^<([a-z0-9][a-z0-9_]*)>$")
# The genre is optional: ``<BOS> text <EOS>`` is a story under the neutral header (free mode).
_TRAINING_LINE = re.compile(r"^<BOS>\s+(?:<([a-z0-9][a-z0-9_]*)>\s*)?(.*?)\s*(?:<EOS>)?\s*$", re.DOTALL)


def normalize_genre(name: str) -> str:
    """Turn a label such as ``"Sci-Fi & Fantasy"`` or ``"Horror"`` into a genre name (``sci_fi_fantasy``)."""
    cleaned = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    if not cleaned:
        raise ValueError(f"genre name {name!r} has no letters or digits")
    return cleaned


def is_valid_genre(name: str) -> bool:
    return bool(_GENRE_NAME.match(name))


def genre_token(genre: str) -> str:
    """``"horror"`` → ``"<horror>"``."""
    if not is_valid_genre(genre):
        raise ValueError(f"invalid genre name {genre!r}: use lower-case letters, digits and underscores")
    return f"<{genre}>"


def genre_from_token(token: str) -> str | None:
    """``"<horror>"`` → ``"horror"``; structural tokens and anything else → None."""
    if token in STRUCTURAL_TOKENS:
        return None
    match = _GENRE_TOKEN.match(token)
    return match.group(1) if match else None


def genres_from_special_tokens(tokens: Iterable[str]) -> list[str]:
    """The genres a checkpoint brings: its special tokens of the form ``<name>`` other than BOS/EOS/PAD.

    Order is preserved (it is the order the training run added them), duplicates dropped.
    """
    genres: list[str] = []
    for token in tokens:
        genre = genre_from_token(token)
        if genre is not None and genre not in genres:
            genres.append(genre)
    return genres


def genre_label(genre: str) -> str:
    """Human label: ``"sci_fi"`` → ``"Sci-Fi"``, ``"drama"`` → ``"Drama"``."""
    return "-".join(part.capitalize() for part in genre.split("_"))


def memory_text(memory: str) -> str:
    """How the writer's Memory enters the prompt: in square brackets, so the model can tell it from the story
    (the built-in model is trained with character names in this form). Already bracketed text is kept as is."""
    memory = " ".join(memory.split())
    if not memory or (memory.startswith("[") and memory.endswith("]")):
        return memory
    return f"[{memory}]"


def build_header(genre: str | None, memory: str = "") -> str:
    """The fixed start of every prompt: ``<BOS> <genre>`` plus optional memory text.

    ``genre=None`` is free mode (a checkpoint without genre tokens): just ``<BOS>``.
    The header is kept whole when a long story is trimmed to the context window.
    """
    parts = [BOS_TOKEN]
    if genre is not None:
        parts.append(genre_token(genre))
    memory = memory_text(memory)
    if memory:
        parts.append(memory)
    return " ".join(parts)


def build_prompt(genre: str | None, story: str = "", memory: str = "") -> str:
    """``<BOS> <genre> [memory] story`` — the text the model continues."""
    header = build_header(genre, memory)
    story = story.lstrip()
    return f"{header} {story}" if story else header


def title_prompt(title: str, genre: str | None) -> str:
    """The seed app's title prompt: ``"The Last Train" is an action film about``."""
    title = title.strip().strip('"').strip()
    if not title:
        raise ValueError("title is empty")
    if genre is None:
        return f'"{title}" is a film about'
    words = genre.replace("_", "-")
    article = "an" if words[0] in "aeiou" else "a"
    return f'"{title}" is {article} {words} film about'


def opening_text(text: str) -> str:
    """A starter or title prompt as it goes into the story: ending with a space, so the passage starts a new word
    (the spacing rule, ``engine/passage.py``)."""
    text = text.strip()
    return text + " " if text else ""


def training_line(genre: str | None, text: str) -> str:
    """One training example: ``<BOS> <genre> text <EOS>`` on a single line."""
    text = " ".join(text.split())
    return f"{build_prompt(genre, text)} {EOS_TOKEN}"


def parse_training_line(line: str) -> tuple[str | None, str] | None:
    """``"<BOS> <drama> text <EOS>"`` → ``("drama", "text")``; ``"<BOS> text <EOS>"`` (the neutral header) →
    ``(None, "text")``; anything else → None."""
    match = _TRAINING_LINE.match(line.strip())
    if not match or not match.group(2):
        return None
    return match.group(1), match.group(2)
