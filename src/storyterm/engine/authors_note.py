"""The author's note: a short text the writer puts a chosen number of sentences before the end of the story, where
it steers the next passage most (``[Style: tense, short sentences]``).

Depth counts sentences back from the end of the story: 0 puts the note after the story, 1 before its last sentence
(an unfinished one counts), 3 (the default) before the last three. A story with fewer sentences gets the note at its
start. The note is written like Memory, in square brackets. It is cut in at whitespace that follows a sentence end, so
byte-level BPE tokenizes the text on either side exactly as it would without the note.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .context import SENTENCE_END
from .errors import SettingsError
from .prompt import memory_text

DEFAULT_NOTE_DEPTH = 3
MAX_NOTE_DEPTH = 100
MAX_NOTE_CHARS = 1000


def validate_note(note: Any, depth: Any) -> None:
    """SettingsError with a one-line message for a bad note or depth."""
    if not isinstance(note, str):
        raise SettingsError(f"the author's note must be text, got {note!r}")
    if len(note) > MAX_NOTE_CHARS:
        raise SettingsError(f"the author's note must be at most {MAX_NOTE_CHARS} characters, got {len(note)}")
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= MAX_NOTE_DEPTH:
        raise SettingsError(
            f"the author's note depth must be a whole number of sentences from 0 to {MAX_NOTE_DEPTH}, got {depth!r}")


def note_text(note: str) -> str:
    """How the note enters the prompt: one line, in square brackets unless it already is ("" for no note)."""
    return memory_text(note)


def split_at_depth(story: str, depth: int) -> tuple[str, str]:
    """(story before the note, story after it). ``after`` starts with the whitespace of the gap, or is "" (depth 0);
    ``before`` is "" when the story has ``depth`` sentences or fewer (then ``after`` is the whole story)."""
    if depth == 0:
        return story, ""
    gaps = [match.end() for match in SENTENCE_END.finditer(story)]
    if len(gaps) < depth:
        return "", story
    cut = gaps[-depth]
    return story[:cut], story[cut:]


@dataclass(frozen=True)
class NotePlacement:
    """Where the note goes in a prompt: the story before it (trimmed afterwards like any story), then ``tail_ids``."""

    before: str  # the story text before the note
    tail_ids: list[int]  # the note's ids, then the story after it
    note_tokens: int = 0
    trimmed: bool = False  # the sentences after the note alone overflowed: only their end is kept
    warning: str | None = None


def place_note(note: str, depth: int, story: str, *, encode: Callable[[str], list[int]], leading_space: bool,
               header_tokens: int, budget: int, window: int) -> NotePlacement:
    """Split ``story`` around the note. ``budget``: prompt tokens available before any closing markup.

    The note is kept whole unless it and the header (genre, memory) alone exceed half the window: then it is left
    out, with a one-line warning. The story after the note is kept whole unless it alone overflows."""
    text = note_text(note)
    if not text:
        return NotePlacement(story, [])
    before, after = split_at_depth(story, depth)
    note_ids = encode((" " if before or leading_space else "") + text)
    if header_tokens + len(note_ids) > window // 2:
        return NotePlacement(story, [], warning=(
            f"the author's note ({len(note_ids)} tokens) and the header with memory ({header_tokens} tokens) take "
            f"more than half of the model's {window}-token context: the note is left out; shorten them"))
    after_ids = encode(after if before else (" " + after if after else ""))
    room = budget - header_tokens - len(note_ids)
    if len(after_ids) <= room:
        return NotePlacement(before, note_ids + after_ids, len(note_ids))
    kept = after_ids[len(after_ids) - room :] if room > 0 else []
    return NotePlacement("", note_ids + kept, len(note_ids), trimmed=True)


def header_cap(header_tokens: int, note_tokens: int, story_tokens: int, budget: int, window: int) -> int:
    """How many header tokens (genre, memory) a trimmed prompt keeps: all of them while the header and the note
    together take at most half the window (and fit); else memory's end goes so the story keeps half the budget."""
    if header_tokens + note_tokens <= window // 2 and header_tokens <= budget:
        return header_tokens
    return max(1, budget - min(story_tokens, budget // 2))
