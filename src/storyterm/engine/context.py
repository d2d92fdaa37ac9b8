"""Long stories without re-reading the window for every passage: a window that slides in jumps ("smart context",
as KoboldCpp calls it) and a KV cache kept from one passage to the next.

GPT-2's positions are absolute, so cached keys and values stay valid only while the window's first token stays the
same. A window that slid by the few tokens of every new passage would have to be read again from scratch each time
(a ~1 000-token prompt costs seconds on a laptop CPU). Instead, once a story outgrows the window, the window starts
at a sentence about a third of the window back from full, and stays anchored there while passages are added; only
when it is full again does it jump forward. Between jumps each passage only reads the tokens it has not seen.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# How much of the story's share of the window is left free after a jump: larger means fewer re-reads, less context.
SMART_CONTEXT_SLACK = 1 / 3

# Text boundaries as regexes whose match ends where the whitespace after a sentence / a word begins. Cutting text at
# such whitespace keeps byte-level BPE ids unchanged (no pre-token spans it); ``training/`` packs by sentences too.
SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s+\S)")  # . ! ? … and closing quotes or brackets, more text after
WORD_END = re.compile(r"\S(?=\s)")


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


@dataclass(frozen=True)
class _Anchor:
    offset: int      # index of the whitespace that starts the window in the story text
    prefix: str      # digest of story[:offset]: an edit before the anchor invalidates it


class SmartWindow:
    """Chooses where a long story's window starts, remembering the choice between passages.

    ``encode(text)`` must tokenize writer text; cutting the text at whitespace that follows a non-space character
    gives the same ids as the whole text's end (byte-level BPE never merges across such a point)."""

    def __init__(self, encode: Callable[[str], list[int]], slack: float = SMART_CONTEXT_SLACK):
        if not 0 <= slack < 1:
            raise ValueError("slack must be in [0, 1)")
        self._encode = encode
        self._slack = slack
        self._anchor: _Anchor | None = None

    def reset(self) -> None:
        self._anchor = None

    def story_ids(self, story: str, tail_start: int, tail_ids: Sequence[int], keep: int) -> list[int]:
        """The ids of the story's window: at most ``keep`` tokens, ending with the story.

        ``tail_ids`` are the ids of ``story[tail_start:]`` (at least ``keep`` of them, or the whole story)."""
        if keep <= 0:
            return []
        anchor = self._anchor
        if (anchor is not None and tail_start <= anchor.offset < len(story)
                and _digest(story[: anchor.offset]) == anchor.prefix):
            ids = self._encode(story[anchor.offset:])
            if len(ids) <= keep:
                return ids
        return self._jump(story, tail_start, tail_ids, keep)

    def _jump(self, story: str, tail_start: int, tail_ids: Sequence[int], keep: int) -> list[int]:
        """A new anchor: the first sentence (else word) gap from which the rest fits in ``keep - slack`` tokens."""
        target = max(1, keep - int(keep * self._slack))
        if len(tail_ids) <= target:
            self._anchor = None
            return list(tail_ids)
        for boundary in (SENTENCE_END, WORD_END):
            found = self._fitting_gap(story, tail_start, boundary, target)
            if found is not None:
                offset, ids = found
                self._anchor = _Anchor(offset, _digest(story[:offset]))
                return ids
        self._anchor = None
        return list(tail_ids[len(tail_ids) - keep :])

    def _fitting_gap(self, story: str, start: int, boundary: re.Pattern[str], target: int
                     ) -> tuple[int, list[int]] | None:
        """The earliest gap after ``start`` from which the rest of the story is at most ``target`` tokens, with the
        rest's ids. Binary search (token counts fall as the gap moves right): a few tokenizations of a window."""
        positions = [m.end() for m in boundary.finditer(story, start)]
        low, high = 0, len(positions) - 1
        best = None
        while low <= high:
            middle = (low + high) // 2
            ids = self._encode(story[positions[middle]:])
            if len(ids) <= target:
                best, high = (positions[middle], ids), middle - 1
            else:
                low = middle + 1
        return best


class PromptCache:
    """The KV cache of the last passage and the token ids it holds, reused when the next prompt starts the same way.

    Only for one-row generations (alternatives expand the batch). Whether and how a cache can be cut back to the
    shared prefix depends on its attention type: ``kv_cache.reuse`` decides, and a cache that cannot be cut exactly
    is dropped (the prompt is then read afresh)."""

    def __init__(self) -> None:
        self._cache: Any = None
        self._ids: list[int] = []

    @property
    def cached_tokens(self) -> int:
        return len(self._ids) if self._cache is not None else 0

    def clear(self) -> None:
        self._cache = None
        self._ids = []

    def take(self, input_ids: Sequence[int], make_cache: Callable[[], Any],
             cut_back: Callable[[Any, int], Any | None]) -> tuple[Any, int]:
        """A cache to pass to ``generate`` for ``input_ids`` and how many of their tokens it already holds.

        ``make_cache()`` builds an empty cache; ``cut_back(cache, n)`` returns a cache holding exactly the first
        ``n`` tokens of ``cache`` (the same object or a copy), or None when that cannot be done exactly."""
        cache, held = self._cache, self._ids
        self.clear()
        reusable = min(_common_prefix(held, input_ids), len(input_ids) - 1)  # generate needs one token to read
        if cache is not None and reusable > 0:
            # The kept cache is reused whatever its kind: re-reading the window costs far more than a slower kind.
            reused = cut_back(cache, reusable)
            if reused is not None:
                return reused, reusable
        return make_cache(), 0

    def keep(self, cache: Any, sequence: Sequence[int]) -> None:
        """After a generation: ``sequence`` is the prompt and the new tokens; the cache holds all but the last."""
        length = int(cache.get_seq_length())
        if 0 < length <= len(sequence):
            self._cache, self._ids = cache, list(sequence[:length])
        else:
            self.clear()


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    limit = min(len(a), len(b))
    index = 0
    while index < limit and a[index] == b[index]:
        index += 1
    return index

