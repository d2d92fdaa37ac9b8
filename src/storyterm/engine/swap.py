"""Swap a token: continue a passage from token i with another candidate, as one request.

The prompt is the story, the passage's text before token i, and the replacement; the model writes the rest. The
stream yields that head first, then the new text, so the whole new passage streams in place of the old one; its
result is the new passage (head + continuation) with the kept tokens' probabilities, the replacement's, and the new
ones'. Where it branched is for the caller to record (``Draft.add_swap``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from .token_probs import TokenSwap

if TYPE_CHECKING:
    from .generation import GenerationRequest, GenerationResult, GenerationStream, StoryEngine

def swap_request(request: GenerationRequest, swap: TokenSwap) -> GenerationRequest:
    """The request that continues after the replacement: one alternative, the rest of the old length, and at
    least half of it (a swap near a passage's end still gets room to finish a sentence)."""
    settings = request.settings
    left = max(settings.max_new_tokens // 2, settings.max_new_tokens - swap.index - 1, 1)
    settings = replace(settings, num_alternatives=1, max_new_tokens=left)
    return replace(request, story=request.story + swap.head, settings=settings, heal=False,  # the chosen token stays
                   token_probs=request.token_probs or len(swap.tokens[swap.index].top))


class SwapStream:
    """A GenerationStream whose text and result are the whole new passage (kept head + continuation)."""

    def __init__(self, stream: GenerationStream, swap: TokenSwap):
        self._stream = stream
        self.swap = swap

    def __iter__(self) -> Iterator[str]:
        yield self.swap.head
        yield from self._stream

    def cancel(self) -> None:
        self._stream.cancel()

    @property
    def cancelled(self) -> bool:
        return self._stream.cancelled

    @property
    def done(self) -> bool:
        return self._stream.done

    def result(self, timeout: float | None = None) -> GenerationResult:
        result = self._stream.result(timeout)
        head = self.swap.head
        rest = result.tokens[0] if result.tokens else None
        tokens = (self.swap.head_tokens() + rest,) if rest is not None else (None,)
        return replace(result, texts=[head + result.texts[0]], tokens=tokens, endings=result.endings[:1])


def stream_swap(engine: StoryEngine, request: GenerationRequest, swap: TokenSwap) -> SwapStream:
    """``request`` is the one that continues the story the passage continued (its ``story`` ends where the
    passage begins). Raises like ``StoryEngine.stream``."""
    return SwapStream(engine.stream(swap_request(request, swap)), swap)
