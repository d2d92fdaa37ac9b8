"""The word guard: a lower-case word may only be spelled along words of the training text.

A transformers ``LogitsProcessor`` run before temperature and the top-k/top-p/min-p filters. At each step it finds
the word being written (the letters at the end of the text, :mod:`storyterm.engine.words` definitions) and allows:

* a token that continues that word only if the longer spelling is the start of a known word;
* a token that ends it (its text has a non-letter: a space, punctuation, the end token) only if the word is a
  complete known word;
* a token that starts a new lower-case word inside it (" the", ".the") only if that start begins a known word.

Words with a capital anywhere are free (names) — but a lower-case word the model is writing stays lower-case: a
token with capitals never glues onto it ("ambula" + "The") — so is a word the writer left unfinished that no known
word starts with, and so are tokens holding part of a multi-byte character. If a row would be left with no allowed token,
it is left unchanged (never a row of -inf, never NaNs).

Cost: per-token properties (text, leading and trailing letters) are computed once per tokenizer; the tokens that
may continue a word come from walking a trie of the tokens' leading letters against the known-word prefixes,
cached per partial word; a step is a short look at the last few token ids and one ``masked_fill``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from .words import WORD, WORDS_FILE, checkpoint_known_words

_LEADING = re.compile(rf"^{WORD.pattern}")
_TRAILING = re.compile(rf"{WORD.pattern}$")
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # SentencePiece byte fallback
_SENTENCEPIECE_SPACE = "\u2581"  # ▁
_REPLACEMENT = "\ufffd"
_TAIL_TOKENS = 24  # how far back to look for the start of the current word
_CACHE_LIMIT = 50_000  # partial words whose allowed continuations are remembered

# Token kinds by their leading letters.
_NO_LETTERS, _FREE_LETTERS, _LOWER_LETTERS = 0, 1, 2


def _gpt2_byte_decoder() -> dict[str, int]:
    """GPT-2's byte ↔ printable-character table, inverted (the characters byte-level BPE vocabularies use)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(char): byte for byte, char in zip(printable, chars, strict=True)}


def token_bytes(tokenizer: Any) -> list[bytes | None]:
    """The UTF-8 bytes each token id adds to decoded text (None for special tokens). Works for byte-level BPE
    (``Ġ`` for a space, one token may hold part of a character) and SentencePiece (``▁``, ``<0xNN>`` fallback)."""
    count = len(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(range(count)))
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    spaced_gpt2 = sum(1 for t in tokens if t and t.startswith("Ġ"))
    spaced_sentencepiece = sum(1 for t in tokens if t and t.startswith(_SENTENCEPIECE_SPACE))
    byte_decoder = _gpt2_byte_decoder() if spaced_gpt2 > spaced_sentencepiece else None
    result: list[bytes | None] = []
    for token_id, token in enumerate(tokens):
        if token is None or token_id in special:
            result.append(None)
        elif byte_decoder is not None and all(char in byte_decoder for char in token):
            result.append(bytes(byte_decoder[char] for char in token))
        elif match := _BYTE_TOKEN.fullmatch(token):
            result.append(bytes([int(match.group(1), 16)]))
        else:
            result.append(token.replace(_SENTENCEPIECE_SPACE, " ").encode("utf-8"))
    return result


def token_texts(tokenizer: Any) -> list[str | None]:
    """Each token's text on its own (None for special tokens); part of a multi-byte character reads as U+FFFD."""
    return [None if b is None else b.decode("utf-8", errors="replace") for b in token_bytes(tokenizer)]


class WordGuard:
    """Everything precomputed for one tokenizer and one known-word set; ``processor()`` makes the LogitsProcessor.

    States of the word being written (``state()``): "start" (no letters before), "word" (a lower-case start of a
    known word), "free" (capitals, a word of the writer's no known word starts with, a character being completed),
    "end" (a generated lower-case spelling no known word starts with — only reachable through a free step: it may
    only end)."""

    def __init__(self, tokenizer: Any, known_words: Iterable[str]):
        self.words = frozenset(w for w in known_words if w.islower())
        self.prefixes = frozenset(word[:end] for word in self.words for end in range(1, len(word) + 1))
        # Prefixes that a known word continues with a non-ASCII letter (then part of a character may follow).
        self._non_ascii_next = frozenset(word[:i] for word in self.words for i, c in enumerate(word) if ord(c) > 127)
        self.bytes = token_bytes(tokenizer)
        texts = [None if b is None else b.decode("utf-8", errors="replace") for b in self.bytes]
        self.texts = [t or "" for t in texts]
        self.size = len(texts)
        self.partial: list[int] = []  # tokens holding part of a multi-byte character
        self.kind = [_NO_LETTERS] * self.size
        self.trailing_ok = [True] * self.size  # the word a token starts after a non-letter begins a known word
        # Tries walked together: known words (char -> node; "" marks a word end) and tokens' leading lower-case
        # letters (node = [children, ids of letter-only tokens, ids of tokens that also end the word]).
        self._word_trie: dict = {}
        for word in self.words:
            node = self._word_trie
            for char in word:
                node = node.setdefault(char, {})
            node[""] = True
        self._trie: list = [{}, [], []]
        for token_id, text in enumerate(self.texts):
            if _REPLACEMENT in text:
                self.partial.append(token_id)
                continue
            leading = _LEADING.match(text)
            letters = leading.group(0) if leading else ""
            closes = len(letters) < len(text) or texts[token_id] is None  # has a non-letter: ends the word
            if closes:
                trailing = _TRAILING.search(text[len(letters):])
                start = trailing.group(0) if trailing else ""
                self.trailing_ok[token_id] = not start.islower() or start in self.prefixes
            if letters:
                self.kind[token_id] = _LOWER_LETTERS if letters.islower() else _FREE_LETTERS
            if self.kind[token_id] == _LOWER_LETTERS:
                node = self._trie
                for char in letters:
                    node = node[0].setdefault(char, [{}, [], []])
                if not closes:
                    node[1].append(token_id)
                elif self.trailing_ok[token_id]:
                    node[2].append(token_id)
        self._continuations: dict[str, list[int]] = {}
        self._pending: dict[tuple[str, bytes], list[int]] = {}
        self._masks: dict[tuple[int, str], dict[str, torch.Tensor]] = {}

    # -- reading the text ---------------------------------------------------------------------------------------------

    def tail_bytes(self, ids: list[int]) -> tuple[bytes, bool]:
        """The bytes of ``ids`` back to a special token, and whether they reach back to the start of ``ids``."""
        chunks = []
        whole = True
        for token_id in reversed(ids):
            piece = self.bytes[token_id] if token_id < self.size else None
            if piece is None:
                whole = False
                break
            chunks.append(piece)
        return b"".join(reversed(chunks)), whole

    def tail(self, ids: list[int]) -> tuple[str, bool]:
        """The text of ``ids`` decoded together (see ``tail_bytes``); an incomplete last character reads as U+FFFD."""
        data, whole = self.tail_bytes(ids)
        return data.decode("utf-8", errors="replace"), whole

    def current_word(self, ids: list[int]) -> str | None:
        """The letters at the end of the text of ``ids`` (None: a character is incomplete, or every one of the
        ``_TAIL_TOKENS`` last tokens is letters)."""
        text, whole = self.tail(ids[-_TAIL_TOKENS:])
        if text.endswith(_REPLACEMENT):
            return None
        match = _TRAILING.search(text)
        word = match.group(0) if match else ""
        if whole and word == text and len(ids) >= _TAIL_TOKENS:
            return None
        return word

    def state(self, word: str | None, writers: bool = True) -> str:
        """See the class docstring. ``writers``: the word began in the writer's text."""
        if word == "":
            return "start"
        if word is None or not word.islower():
            return "free"
        if word in self.prefixes:
            return "word"
        return "free" if writers else "end"

    def continuations(self, word: str) -> list[int]:
        """Tokens whose leading lower-case letters extend ``word`` to a known prefix (and, for a token that also
        ends the word, to a complete known word)."""
        cached = self._continuations.get(word)
        if cached is not None:
            return cached
        found: list[int] = []
        node = self._word_trie
        for char in word:
            node = node.get(char)
            if node is None:
                break
        else:
            self._walk(self._trie, node, found)
        if len(self._continuations) >= _CACHE_LIMIT:
            self._continuations.clear()
        self._continuations[word] = found
        return found

    def _walk(self, token_node: list, word_node: dict, found: list[int]) -> None:
        """Follow the characters both tries have (iterating the smaller child set)."""
        children = token_node[0]
        if len(children) <= len(word_node):
            pairs = ((child, word_node.get(char)) for char, child in children.items())
        else:
            pairs = ((children.get(char), child) for char, child in word_node.items() if char)
        for token_child, word_child in pairs:
            if token_child is None or word_child is None:
                continue
            found.extend(token_child[1])
            if "" in word_child:
                found.extend(token_child[2])
            if token_child[0]:
                self._walk(token_child, word_child, found)

    def allowed(self, word: str | None, writers: bool = True) -> set[int]:
        """The allowed token ids after ``word`` (a slow, readable reference of ``blocked_mask``; for tests)."""
        state = self.state(word, writers)
        complete = state in ("start", "end") or (state == "word" and word in self.words)
        result = set()
        if state in ("start", "free") or complete or (state == "word" and word in self._non_ascii_next):
            if state != "end":
                result.update(self.partial)
        for token_id in range(self.size):
            kind = self.kind[token_id]
            if not self.trailing_ok[token_id] or token_id in self.partial:
                continue
            # Capitals start a new word (a name) but never glue onto a lower-case one ("ambulaThe").
            if state == "free" or (kind == _NO_LETTERS and complete) or (kind == _FREE_LETTERS and state == "start"):
                result.add(token_id)
        if state in ("start", "word"):
            result.update(self.continuations(word))
        return result

    # -- masks --------------------------------------------------------------------------------------------------------

    def _base_masks(self, vocab: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Blocked-token masks that do not depend on the word's letters, per scores width and device."""
        key = (vocab, str(device))
        masks = self._masks.get(key)
        if masks is None:
            pad = max(0, vocab - self.size)  # ids past the tokenizer read like an end token
            kind = torch.tensor(self.kind + [_NO_LETTERS] * pad, dtype=torch.int8)[:vocab]
            ok = torch.tensor(self.trailing_ok + [True] * pad, dtype=torch.bool)[:vocab]
            partial = torch.zeros(vocab, dtype=torch.bool)
            partial[[i for i in self.partial if i < vocab]] = True
            ok &= ~partial
            ends = ok & (kind == _NO_LETTERS)  # tokens that end the word
            capitals = ok & (kind == _FREE_LETTERS)  # a new capitalised word: only where no word is open
            masks = {
                "free": ~(ok | partial),
                "end": ~ends,
                "complete": ~(ends | partial),
                "incomplete": torch.ones(vocab, dtype=torch.bool),
                "incomplete_non_ascii": ~partial,
            }
            start = ~(ends | partial | capitals)
            start[torch.tensor(self.continuations(""), dtype=torch.long)] = False
            masks["start"] = start
            masks = {name: mask.to(device) for name, mask in masks.items()}
            self._masks = {key: masks}
        return masks

    def pending_character_mask(self, tail: bytes, vocab: int, device: torch.device) -> torch.Tensor:
        """After ``tail`` (generated bytes ending in an incomplete character): a word end, or a part-character
        token whose completed text keeps the word a known start (or still leaves the character incomplete)."""
        before = _TRAILING.search(tail.decode("utf-8", errors="replace").rstrip(_REPLACEMENT))
        key = (before.group(0) if before else "", tail[-4:])  # the letters before and the pending bytes
        blocked = self._pending.get(key)
        if blocked is None:
            blocked = []
            for token_id in self.partial:
                text = (tail + self.bytes[token_id]).decode("utf-8", errors="replace")
                if text.endswith(_REPLACEMENT):
                    continue
                run = _TRAILING.search(text)
                word = run.group(0) if run else ""
                if word and word.islower() and word not in self.prefixes:
                    blocked.append(token_id)
            if len(self._pending) >= _CACHE_LIMIT:
                self._pending.clear()
            self._pending[key] = blocked
        mask = self._base_masks(vocab, device)["complete"]
        if blocked:
            mask = mask.clone()
            mask[torch.tensor([i for i in blocked if i < vocab], dtype=torch.long, device=device)] = True
        return mask

    def blocked_mask(self, word: str | None, vocab: int, device: torch.device, writers: bool = True) -> torch.Tensor:
        """True where a token may not follow ``word``."""
        masks = self._base_masks(vocab, device)
        state = self.state(word, writers)
        if state != "word":
            return masks[state]
        if word in self.words:
            mask = masks["complete"].clone()
        else:
            mask = masks["incomplete_non_ascii" if word in self._non_ascii_next else "incomplete"].clone()
        ids = [i for i in self.continuations(word) if i < vocab]
        if ids:
            mask[torch.tensor(ids, dtype=torch.long, device=device)] = False
        return mask

    def processor(self) -> WordGuardProcessor:
        return WordGuardProcessor(self)


class WordGuardProcessor(LogitsProcessor):
    """Blocks the tokens that would spell a lower-case word no known word starts with (see the module docstring).
    One per ``generate`` call: the first call's input is the prompt, whose last word is the writer's."""

    def __init__(self, guard: WordGuard):
        self.guard = guard
        self.prompt_length: int | None = None
        self.prompt_words: list[str | None] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        guard = self.guard
        if self.prompt_length is None:
            self.prompt_length = input_ids.shape[1]
            self.prompt_words = [guard.current_word(row) for row in input_ids[:, -_TAIL_TOKENS:].tolist()]
        generated = input_ids.shape[1] - self.prompt_length
        tails = input_ids[:, input_ids.shape[1] - min(generated, _TAIL_TOKENS):].tolist() if generated else None
        vocab = scores.shape[-1]
        rows = []
        for row, prompt_word in enumerate(self.prompt_words):
            word, writers = prompt_word, True
            if tails is not None:
                text, whole = guard.tail(tails[row])
                run = _TRAILING.search(text)
                letters = run.group(0) if run else ""
                if text.endswith(_REPLACEMENT):
                    # A character is being completed: only more of it (part-character tokens) or a word end; a
                    # letter token here would make invalid UTF-8 and start an unchecked word right after it.
                    rows.append(guard.pending_character_mask(guard.tail_bytes(tails[row])[0], vocab, scores.device))
                    continue
                if whole and letters == text and prompt_word != "":  # all letters so far: the writer's word goes on
                    word = None if prompt_word is None or generated > _TAIL_TOKENS else prompt_word + letters
                else:
                    word, writers = letters, False
            rows.append(guard.blocked_mask(word, vocab, scores.device, writers))
        blocked = torch.stack(rows)
        guarded = scores.masked_fill(blocked, float("-inf"))
        dead = guarded.amax(dim=-1) == float("-inf")
        if bool(dead.any()):
            guarded[dead] = scores[dead]
        return guarded


class CheckpointWordGuard:
    """The engine's handle on a checkpoint's guard: ``available`` when it ships ``words.txt``; the WordGuard is
    built on first use (about half a second for a 4 k vocabulary and 27 k words), in the generation thread."""

    def __init__(self, tokenizer: Any, checkpoint_dir: Any):
        self._tokenizer = tokenizer
        self._dir = checkpoint_dir
        self._known: frozenset[str] | None = None
        self._guard: WordGuard | None = None
        self._lock = threading.Lock()
        self.available = checkpoint_dir is not None and (Path(checkpoint_dir) / WORDS_FILE).is_file()

    def processors(self, wanted: bool) -> LogitsProcessorList:
        """A list with the guard's processor when ``wanted`` and the checkpoint has known words, else empty."""
        if not (wanted and self.available):
            return LogitsProcessorList()
        with self._lock:
            if self._guard is None:
                known = checkpoint_known_words(self._dir)
                if not known:
                    self.available = False
                    return LogitsProcessorList()
                self._guard = WordGuard(self._tokenizer, known)
        return LogitsProcessorList([self._guard.processor()])
