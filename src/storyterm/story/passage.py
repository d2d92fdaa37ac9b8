"""A passage (one generation, a node of the draft's tree), the draft's errors, and the value checks a draft and its
file format share."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any

from storyterm.engine.errors import StorytermError
from storyterm.engine.token_probs import TokenInfo

from .token_data import decode_tokens, encode_tokens


class DraftError(StorytermError):
    """An operation that makes no sense in the draft's current state (nothing to accept, unknown passage, …)."""


class DraftFormatError(StorytermError, ValueError):
    """Data given to ``Draft.from_dict`` is not a valid draft; the message names the field and the problem."""


class NewerFormatError(DraftFormatError):
    """The data was written by a newer storyterm (a ``format_version`` this version cannot read)."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def context_digest(text: str) -> str:
    """The identity of a spot in the story: SHA-256 of the story text a passage continued."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Passage:
    """One generation: a node of the append-only tree."""

    id: str
    parent_id: str | None
    text: str
    genre: str | None
    settings: dict
    seed: int | None
    model: str
    created_at: str
    accepted: bool = False  # was accepted into the story at some point
    stopped: bool = False  # cut short by the writer
    context_length: int = 0  # length of the story this passage continued
    context_digest: str = ""  # context_digest() of that story: equal digests = alternatives at one spot
    # Optional, absent from older files: the tokens and their probabilities (story/token_data.py), and for a token
    # swap where it branched: {"from": passage id, "token": index of the swapped token}.
    tokens: dict | None = None
    branch: dict | None = None
    # The story between the parent's end and this passage (for a root: all of it), so the tree view can rebuild
    # any branch's text; None in drafts written before it was recorded (story.tree recovers what it can).
    lead_in: str | None = None

    def continues(self, story: str) -> bool:
        """Whether this passage was generated right after exactly ``story``."""
        return len(story) == self.context_length and context_digest(story) == self.context_digest

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for optional in _OPTIONAL_PASSAGE_FIELDS:
            if data[optional] is None:
                del data[optional]
        return data

    def token_infos(self) -> tuple[TokenInfo, ...] | None:
        """The stored tokens (texts joined = ``text``), or None when the passage has none."""
        return decode_tokens(self.tokens, self.text) if self.tokens is not None else None


_OPTIONAL_PASSAGE_FIELDS = ("tokens", "branch", "lead_in")


def require_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    return value


def check_json_values(value: Any, where: str, depth: int = 0) -> None:
    """Passage settings are free-form JSON; refuse what cannot be written back (NaN, odd types, deep nesting)."""
    if depth > 20:
        raise DraftFormatError(f"{where} is nested too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise DraftFormatError(f"{where} has a non-string key")
            check_json_values(item, where, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json_values(item, where, depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise DraftFormatError(f"{where} holds a number that is not finite")
    elif value is not None and not isinstance(value, (str, int, bool)):
        raise DraftFormatError(f"{where} holds a value of type {type(value).__name__}")


def stored_tokens(text: str, tokens: tuple[TokenInfo, ...] | None) -> dict | None:
    if not tokens or "".join(t.text for t in tokens) != text:
        return None
    return encode_tokens(tokens)
