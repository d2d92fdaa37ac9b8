"""The word guard: a lower-case or Title-case word may only be spelled along known spellings.

A transformers ``LogitsProcessor`` run before temperature and the top-k/top-p/min-p filters. At each step it finds
the word being written (the letters at the end of the text, :mod:`storyterm.engine.words` definitions). A word is
*checked* when it is lower-case or Title-case ("anna", "Anna", "Frogramed"), and looked up lower-cased: it must
follow a word of the training text (``words.txt``, which holds its names too) or a word of the request's prompt
(story, Memory, lorebook, author's note, title: every word the model is given — so names the writer made up stay
usable). For a checked word the guard allows:

* a token that continues the word only if the longer spelling is the start of a known or prompt word;
* a token that ends it (its text has a non-letter: a space, punctuation, the end token) only if the word is a
  complete known or prompt word;
* a token that starts a new checked word (" the", ".The") only if that start begins a known or prompt word.

Words with capitals elsewhere ("McDonald", "NASA", "iPhone") are free (:mod:`storyterm.engine.word_tokens` says
why): a word may become one only from its first token or by a capital glued onto a known Title-case start of one
or two letters ("N" + "ASA", "Mc" + "Donald"); a capital never glues onto a longer or a lower-case word
("Frog" + "Ram", "ambula" + "The", so "iPhone" only comes as one token), and a new sentence never glues onto
the end of the last one: after a generated word of three or more letters or digits (or two lower-case letters) and
". ! ?", no token that starts with a capital ("Korea.After", "him.Bublé"; "U.S.", "Ph.D" and "Amazon.com" stay
possible). The writer's own
unfinished word that no known word starts with is free too, and so are tokens holding part of a multi-byte
character. If a row would be left with no allowed token, it is left unchanged (never a row of -inf, never NaNs).

Cost: per-token properties come once per tokenizer (``TokenTable``); the tokens that may continue a word come from
walking a trie of the tokens' leading letters against the known-word prefixes, cached per partial word. The prompt's
words that are not known words (a handful of names) get their own small trie per request (``PromptWords``, built on
the processor's first call from the prompt ids it is given). A step is a short look at the last few token ids and
one ``masked_fill``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import torch
from transformers import LogitsProcessor

from .word_tokens import (
    LOWER_LETTERS,
    NO_LETTERS,
    OTHER_LETTERS,
    REPLACEMENT,
    TAIL_TOKENS,
    TITLE_LETTERS,
    TRAILING,
    TokenTable,
    folded,
    token_bytes,
    token_texts,
)
from .words import WORD

__all__ = ["PromptWords", "WordGuard", "WordGuardProcessor", "token_bytes", "token_texts"]

_CACHE_LIMIT = 50_000  # partial words whose allowed continuations are remembered
# A generated sentence end onto which no capital may glue: a word of 3+ letters or digits, or 2 lower-case letters.
_GLUED_SENTENCE_END = re.compile(r"(?:(?<![^\W_])[^\W_]{3,}|(?<![^\W_])[^\W\d_A-Z]{2})[.!?]\Z")


def _word_trie(words: Iterable[str]) -> dict:
    """char -> node; "" marks a word end."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = True
    return trie


def _prefixes(words: Iterable[str]) -> frozenset[str]:
    return frozenset(word[:end] for word in words for end in range(1, len(word) + 1))


def _non_ascii_next(words: Iterable[str]) -> frozenset[str]:
    """Prefixes that a word continues with a non-ASCII letter (then part of a character may follow)."""
    return frozenset(word[:i] for word in words for i, c in enumerate(word) if ord(c) > 127)


def _short_capital(word: str | None) -> bool:
    """A Title-case start of one or two letters, onto which a capital may glue: "N" + "ASA", "Mc" + "Donald"."""
    return word is not None and len(word) <= 2 and word[:1].isupper()


class WordGuard:
    """Everything precomputed for one tokenizer and one known-word set; ``processor()`` makes the LogitsProcessor.

    States of the word being written (``state()``): "start" (no letters before), "word" (a checked start of a known
    or prompt word), "free" (other capitals, a word of the writer's no known word starts with, a character being
    completed), "end" (a generated checked spelling no known word starts with — only reachable through a free step:
    it may only end)."""

    def __init__(self, tokenizer: Any, known_words: Iterable[str]):
        self.words = frozenset(w for w in known_words if w.islower())
        self.prefixes = _prefixes(self.words)
        self._non_ascii_next = _non_ascii_next(self.words)
        self.table = table = TokenTable(tokenizer)
        self.bytes, self.texts, self.size, self.partial, self.kind = (table.bytes, table.texts, table.size,
                                                                      table.partial, table.kind)
        # A closing token is fine when the word it starts is free or begins a known word; the ones whose start
        # does not (" Xyzzq") are kept by that start, for a prompt that has it.
        self.trailing_ok = [True] * self.size
        self.start_blocked: dict[str, list[int]] = {}
        for token_id, start in enumerate(table.starts):
            start_folded = folded(start) if start else None
            if start_folded is not None and start_folded not in self.prefixes:
                self.trailing_ok[token_id] = False
                if table.kind[token_id] == NO_LETTERS:
                    self.start_blocked.setdefault(start_folded, []).append(token_id)
        self._word_trie = _word_trie(self.words)
        # The tokens' folded leading letters: node = [children, lower-case letter-only ids, lower-case ids that also
        # end the word, the same two for Title-case (only where a word starts)].
        self._trie: list = [{}, [], [], [], []]
        for token_id, kind in enumerate(table.kind):
            if kind not in (LOWER_LETTERS, TITLE_LETTERS) or token_id in table.partial:
                continue
            if table.closes[token_id] and not self.trailing_ok[token_id]:
                continue
            node = self._trie
            for char in table.leading[token_id]:
                node = node[0].setdefault(char, [{}, [], [], [], []])
            node[(1 if kind == LOWER_LETTERS else 3) + table.closes[token_id]].append(token_id)
        self._continuations: dict[str, list[int]] = {}
        self._pending: dict[tuple[str, bytes], list[tuple[int, str | None]]] = {}
        self._masks: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
        self._indices: dict[tuple[str, int, str], torch.Tensor] = {}

    # -- reading the text ---------------------------------------------------------------------------------------------

    def tail(self, ids: list[int]) -> tuple[str, bool]:
        return self.table.tail(ids)

    def current_word(self, ids: list[int]) -> str | None:
        return self.table.current_word(ids)

    def prompt_words(self, text: str) -> PromptWords:
        return PromptWords(self, text)

    def prompt_words_of(self, rows: list[list[int]]) -> PromptWords:
        """The words of prompts given as token ids, less a word each ends with: the writer may not have finished
        it (it stays free where the passage goes on with it)."""
        texts = []
        for row in {tuple(row) for row in rows}:  # alternatives share one prompt
            text = self.table.text_of(list(row))
            last = TRAILING.search(text)
            texts.append(text[: last.start()] if last else text)
        return PromptWords(self, "\n".join(texts))

    def state(self, word: str | None, writers: bool = True, prompt: PromptWords | None = None) -> str:
        """See the class docstring. ``writers``: the word began in the writer's text."""
        if word == "":
            return "start"
        key = folded(word) if word is not None else None
        if key is None:
            return "free"
        if key in self.prefixes:
            return "word"
        if writers:
            return "free"
        return "word" if prompt is not None and key in prompt.prefixes else "end"

    def _complete(self, key: str, prompt: PromptWords | None) -> bool:
        return key in self.words or (prompt is not None and key in prompt.words)

    def _goes_on_non_ascii(self, key: str, prompt: PromptWords | None) -> bool:
        return key in self._non_ascii_next or (prompt is not None and key in prompt.non_ascii_next)

    def continuations(self, word: str) -> list[int]:
        """Tokens whose leading letters extend the (folded) ``word`` to a known prefix (and, for a token that also
        ends the word, to a complete known word): lower-case ones, and Title-case ones where a word starts."""
        cached = self._continuations.get(word)
        if cached is None:
            cached = self.walk(self._word_trie, word)
            if len(self._continuations) >= _CACHE_LIMIT:
                self._continuations.clear()
            self._continuations[word] = cached
        return cached

    def walk(self, word_trie: dict, word: str) -> list[int]:
        """``continuations`` along the words of ``word_trie``."""
        found: list[int] = []
        node = word_trie
        for char in word:
            node = node.get(char)
            if node is None:
                return found
        self._walk(self._trie, node, found, title=word == "")
        return found

    def _walk(self, token_node: list, word_node: dict, found: list[int], title: bool) -> None:
        """Follow the characters both tries have (iterating the smaller child set)."""
        children = token_node[0]
        if len(children) <= len(word_node):
            pairs = ((child, word_node.get(char)) for char, child in children.items())
        else:
            pairs = ((children.get(char), child) for char, child in word_node.items() if char)
        for token_child, word_child in pairs:
            if token_child is None or word_child is None:
                continue
            complete = "" in word_child
            found.extend(token_child[1])
            if complete:
                found.extend(token_child[2])
            if title:
                found.extend(token_child[3])
                if complete:
                    found.extend(token_child[4])
            if token_child[0]:
                self._walk(token_child, word_child, found, title)

    def allowed(self, word: str | None, writers: bool = True, prompt: PromptWords | None = None) -> set[int]:
        """The allowed token ids after ``word``: a slow, readable reference of ``blocked_mask`` (for tests), written
        from the rules rather than the tries."""
        state = self.state(word, writers, prompt)
        key = folded(word) if word else ""
        complete = state in ("start", "end") or (state == "word" and self._complete(key, prompt))
        prefixes = self.prefixes | (prompt.prefixes if prompt is not None else frozenset())
        result = set()
        if state in ("start", "free") or complete or (state == "word" and self._goes_on_non_ascii(key, prompt)):
            if state != "end":
                result.update(self.partial)
        for token_id in range(self.size):
            kind = self.kind[token_id]
            if token_id in self.partial:
                continue
            if not self.trailing_ok[token_id]:
                start = folded(self.table.starts[token_id])
                if (kind == NO_LETTERS and start in prefixes and (state == "free" or complete)
                        and prompt is not None):
                    result.add(token_id)  # it starts a word of the prompt
                continue
            if state == "free" or (kind == NO_LETTERS and complete) or (kind == OTHER_LETTERS and state == "start"):
                result.add(token_id)
            elif kind in (TITLE_LETTERS, OTHER_LETTERS) and state == "word" and _short_capital(word):
                result.add(token_id)  # "N" + "ASA", "Mc" + "Donald": free
            elif kind == LOWER_LETTERS or (kind == TITLE_LETTERS and state == "start"):
                if state not in ("start", "word"):
                    continue
                longer = key + self.table.leading[token_id]
                if self.table.closes[token_id]:
                    if self._complete(longer, prompt):
                        result.add(token_id)
                elif longer in prefixes:
                    result.add(token_id)
        return result

    # -- masks --------------------------------------------------------------------------------------------------------

    def _base_masks(self, vocab: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Blocked-token masks that do not depend on the word's letters, per scores width and device."""
        key = (vocab, str(device))
        masks = self._masks.get(key)
        if masks is None:
            pad = max(0, vocab - self.size)  # ids past the tokenizer read like an end token
            kind = torch.tensor(self.kind + [NO_LETTERS] * pad, dtype=torch.int8)[:vocab]
            ok = torch.tensor(self.trailing_ok + [True] * pad, dtype=torch.bool)[:vocab]
            partial = torch.zeros(vocab, dtype=torch.bool)
            partial[[i for i in self.partial if i < vocab]] = True
            ok &= ~partial
            ends = ok & (kind == NO_LETTERS)  # tokens that end the word
            capitals = ok & ((kind == TITLE_LETTERS) | (kind == OTHER_LETTERS))
            masks = {
                "free": ~(ok | partial),
                "end": ~ends,
                "complete": ~(ends | partial),
                "incomplete": torch.ones(vocab, dtype=torch.bool),
                "incomplete_non_ascii": ~partial,
                "capitals": capitals,  # may glue onto a short capital start
                # a capital first character: never glued onto a generated sentence end
                "capital_start": torch.tensor([text[:1].isupper() for text in self.texts] + [False] * pad,
                                              dtype=torch.bool)[:vocab] & ~partial,
            }
            start = ~(ends | partial | (ok & (kind == OTHER_LETTERS)))
            start[torch.tensor([i for i in self.continuations("") if i < vocab], dtype=torch.long)] = False
            masks["start"] = start
            masks = {name: mask.to(device) for name, mask in masks.items()}
            self._masks = {key: masks}
        return masks

    def _continuation_index(self, key: str, vocab: int, device: torch.device) -> torch.Tensor:
        """``continuations(key)`` as an index tensor (cached: making it is most of a step's cost)."""
        cache_key = (key, vocab, str(device))
        index = self._indices.get(cache_key)
        if index is None:
            if len(self._indices) >= _CACHE_LIMIT:
                self._indices.clear()
            ids = [i for i in self.continuations(key) if i < vocab]
            index = self._indices[cache_key] = torch.tensor(ids, dtype=torch.long, device=device)
        return index

    def pending_character_mask(self, tail: bytes, vocab: int, device: torch.device,
                               prompt: PromptWords | None = None) -> torch.Tensor:
        """After ``tail`` (generated bytes ending in an incomplete character): a word end, or a part-character
        token whose completed text keeps a checked word a known start (or still leaves the character incomplete);
        a capital never completes onto a checked word."""
        before = TRAILING.search(tail.decode("utf-8", errors="replace").rstrip(REPLACEMENT))
        letters = before.group(0) if before else ""
        key = (letters, tail[-4:])  # the letters before and the pending bytes
        candidates = self._pending.get(key)
        if candidates is None:  # (token id, the folded word it makes, or None: blocked whatever the prompt)
            candidates = []
            checked_before = bool(letters) and folded(letters) is not None and not _short_capital(letters)
            for token_id in self.partial:
                text = (tail + self.bytes[token_id]).decode("utf-8", errors="replace")
                if text.endswith(REPLACEMENT):
                    continue
                run = TRAILING.search(text)
                word_key = folded(run.group(0)) if run else None
                if run and word_key is None and checked_before:
                    candidates.append((token_id, None))
                elif word_key is not None and word_key not in self.prefixes:
                    candidates.append((token_id, word_key))
            if len(self._pending) >= _CACHE_LIMIT:
                self._pending.clear()
            self._pending[key] = candidates
        blocked = [i for i, word_key in candidates
                   if i < vocab and (word_key is None or prompt is None or word_key not in prompt.prefixes)]
        mask = self._base_masks(vocab, device)["complete"]
        if prompt is not None and prompt.starts:
            mask = prompt.unblock(mask, prompt.starts)
        if blocked:
            mask = mask.clone()
            mask[torch.tensor(blocked, dtype=torch.long, device=device)] = True
        return mask

    def blocked_mask(self, word: str | None, vocab: int, device: torch.device, writers: bool = True,
                     prompt: PromptWords | None = None) -> torch.Tensor:
        """True where a token may not follow ``word``."""
        masks = self._base_masks(vocab, device)
        state = self.state(word, writers, prompt)
        if state != "word":
            if prompt is None:
                return masks[state]
            cache_key = (state, vocab, str(device))
            mask = prompt.state_masks.get(cache_key)
            if mask is None:  # every state but "word" lets a word end, so a prompt word may start
                mask = masks[state]
                if state == "start":
                    mask = prompt.unblock(mask, prompt.continuations(""))
                mask = prompt.state_masks[cache_key] = prompt.unblock(mask, prompt.starts)
            return mask
        key = folded(word)
        complete = self._complete(key, prompt)
        if complete:
            mask = masks["complete"]
        else:
            mask = masks["incomplete_non_ascii" if self._goes_on_non_ascii(key, prompt) else "incomplete"]
        if _short_capital(word):
            mask = mask & ~masks["capitals"]
        mask = mask.clone()
        mask[self._continuation_index(key, vocab, device)] = False
        if prompt is not None:
            mask = prompt.unblock(mask, prompt.continuations(key))
            if complete:
                mask = prompt.unblock(mask, prompt.starts)
        return mask

    def capital_start_mask(self, vocab: int, device: torch.device) -> torch.Tensor:
        """True for the tokens whose first character is a capital (blocked right after a generated sentence end)."""
        return self._base_masks(vocab, device)["capital_start"]

    def processor(self) -> WordGuardProcessor:
        return WordGuardProcessor(self)


class PromptWords:
    """One request's prompt words that are not known words (lower-cased: the writer's names, mostly), and what they
    let through: ``continuations`` along them and ``starts`` (closing tokens that start one: " Tavi")."""

    def __init__(self, guard: WordGuard, text: str):
        self.guard = guard
        self.words = frozenset({w.lower() for w in WORD.findall(text)} - guard.words)
        self.prefixes = _prefixes(self.words)
        self.non_ascii_next = _non_ascii_next(self.words)
        self._trie = _word_trie(self.words)
        self._continuations: dict[str, list[int]] = {}
        self.state_masks: dict[tuple[str, int, str], torch.Tensor] = {}  # blocked_mask's, for this request
        smaller, larger = sorted((self.prefixes, guard.start_blocked.keys()), key=len)
        self.starts = sorted(i for start in smaller if start in larger for i in guard.start_blocked[start])

    def continuations(self, word: str) -> list[int]:
        """Like ``WordGuard.continuations``, along the prompt's words."""
        if word and word not in self.prefixes:
            return []
        cached = self._continuations.get(word)
        if cached is None:
            cached = self._continuations[word] = self.guard.walk(self._trie, word)
        return cached

    @staticmethod
    def unblock(mask: torch.Tensor, ids: list[int]) -> torch.Tensor:
        """``mask`` (a copy if needed) with ``ids`` allowed."""
        ids = [i for i in ids if i < mask.shape[-1]]
        if not ids:
            return mask
        mask = mask.clone()
        mask[torch.tensor(ids, dtype=torch.long, device=mask.device)] = False
        return mask


class WordGuardProcessor(LogitsProcessor):
    """Blocks the tokens that would spell a checked word no known or prompt word starts with (see the module
    docstring). One per ``generate`` call: the first call's input is the prompt, whose words it learns and whose
    last word is the writer's."""

    def __init__(self, guard: WordGuard):
        self.guard = guard
        self.prompt_length: int | None = None
        self.prompt_words: list[str | None] = []
        self.prompt: PromptWords | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        guard = self.guard
        if self.prompt_length is None:
            self.prompt_length = input_ids.shape[1]
            self.prompt_words = [guard.current_word(row) for row in input_ids[:, -TAIL_TOKENS:].tolist()]
            self.prompt = guard.prompt_words_of(input_ids.tolist())
        generated = input_ids.shape[1] - self.prompt_length
        tails = input_ids[:, input_ids.shape[1] - min(generated, TAIL_TOKENS):].tolist() if generated else None
        vocab = scores.shape[-1]
        rows = []
        for row, prompt_word in enumerate(self.prompt_words):
            word, writers, glued_end = prompt_word, True, False
            if tails is not None:
                text, whole = guard.tail(tails[row])
                glued_end = _GLUED_SENTENCE_END.search(text) is not None
                run = TRAILING.search(text)
                letters = run.group(0) if run else ""
                if text.endswith(REPLACEMENT):
                    # A character is being completed: only more of it (part-character tokens) or a word end; a
                    # letter token here would make invalid UTF-8 and start an unchecked word right after it.
                    tail = guard.table.tail_bytes(tails[row])[0]
                    rows.append(guard.pending_character_mask(tail, vocab, scores.device, self.prompt))
                    continue
                if whole and letters == text and prompt_word != "":  # all letters so far: the writer's word goes on
                    word = None if prompt_word is None or generated > TAIL_TOKENS else prompt_word + letters
                else:
                    word, writers = letters, False
            mask = guard.blocked_mask(word, vocab, scores.device, writers, self.prompt)
            if glued_end:
                mask = mask | guard.capital_start_mask(vocab, scores.device)
            rows.append(mask)
        blocked = torch.stack(rows)
        guarded = scores.masked_fill(blocked, float("-inf"))
        dead = guarded.amax(dim=-1) == float("-inf")
        if bool(dead.any()):
            guarded[dead] = scores[dead]
        return guarded
