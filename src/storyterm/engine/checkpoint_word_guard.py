"""The engine's handle on a model's word guard (:mod:`storyterm.engine.word_guard`): the word list is read and the
guard built on the first guarded step, in the generation thread, so starting a generation never waits for it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from .word_guard import WordGuard, WordGuardProcessor


class CheckpointWordGuard:
    """The engine's handle on a model's guard: ``available`` when the model has a word list (``LoadedModel.
    known_words``: a checkpoint's words.txt, a GGUF export's metadata). The list is read and the WordGuard built on
    the first guarded step (about half a second for a 4 k vocabulary and 27 k words), in the generation thread."""

    def __init__(self, tokenizer: Any, known_words: Callable[[], frozenset[str] | None] | None):
        self._tokenizer = tokenizer
        self._read = known_words
        self._known: tuple[frozenset[str], list[str]] | None = None  # the list and the same words sorted
        self._guard: WordGuard | None = None
        self._lock = threading.Lock()
        self.available = known_words is not None

    def processors(self, wanted: bool) -> LogitsProcessorList:
        """A list with the guard's processor when ``wanted`` and the model has known words, else empty."""
        if not (wanted and self.available):
            return LogitsProcessorList()
        return LogitsProcessorList([_FirstUseGuard(self)])

    def known_words(self) -> tuple[frozenset[str], list[str]] | None:
        """(the known words, the same sorted), read on first use (a few tens of ms for 27 k words); None when the
        model has no word list or it turned out unreadable or empty."""
        with self._lock:
            return self._known_words()

    def _known_words(self) -> tuple[frozenset[str], list[str]] | None:
        if self._known is None and self.available:
            known = self._read() if self._read is not None else None
            if not known:
                self.available = False
                return None
            self._known = (known, sorted(known))
        return self._known

    def guard(self) -> WordGuard | None:
        """The WordGuard, built on first use; None when the word list turned out unreadable or empty."""
        with self._lock:
            if self._guard is None:
                known = self._known_words()
                if known is None:
                    return None
                self._guard = WordGuard(self._tokenizer, known[0])
            return self._guard


class _FirstUseGuard(LogitsProcessor):
    """A WordGuardProcessor made on the first step, so that starting a generation never waits for the guard."""

    def __init__(self, checkpoint: CheckpointWordGuard):
        self._checkpoint = checkpoint
        self._processor: WordGuardProcessor | None = None
        self._unguarded = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._processor is None and not self._unguarded:
            guard = self._checkpoint.guard()
            self._unguarded = guard is None
            self._processor = guard.processor() if guard is not None else None
        return self._processor(input_ids, scores) if self._processor is not None else scores
