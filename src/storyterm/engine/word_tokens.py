"""What each token of a vocabulary writes, as the word guard (:mod:`storyterm.engine.word_guard`) reads it.

Per token id: the UTF-8 bytes it adds to decoded text (byte-level BPE and SentencePiece alike), whether it holds
part of a multi-byte character, its leading letters (which glue onto the word being written) and their kind, and
whether it ends that word (it has a non-letter) and which word it then starts. Computed once per tokenizer.

A word is *checked* — spelled only along known spellings — when it is lower-case or Title-case (one capital, at
the start: "Anna", "Frogramed"); ``folded`` gives the form looked up (lower-case). Other words with capitals
("McDonald", "NASA", "iPhone") are free: acronyms and mixed-case names are too rare in a story model's text to be
learnt as spellings, and a tokenizer spells them from pieces no word list predicts.
"""

from __future__ import annotations

import re
from typing import Any

from .words import WORD, is_title_case

LEADING = re.compile(rf"^{WORD.pattern}")
TRAILING = re.compile(rf"{WORD.pattern}$")
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # SentencePiece byte fallback
_SENTENCEPIECE_SPACE = "\u2581"  # ▁
REPLACEMENT = "\ufffd"
TAIL_TOKENS = 24  # how far back to look for the start of the current word

# Token kinds by their leading letters: none, lower-case, Title-case, other capitals (all-caps, inner capitals).
NO_LETTERS, LOWER_LETTERS, TITLE_LETTERS, OTHER_LETTERS = 0, 1, 2, 3


def folded(word: str) -> str | None:
    """The lower-case form of a checked word (lower-case or Title-case), None for a free word (or no word)."""
    if word.islower():
        return word
    return word.lower() if is_title_case(word) else None


def letter_kind(letters: str) -> int:
    if not letters:
        return NO_LETTERS
    if letters.islower():
        return LOWER_LETTERS
    return TITLE_LETTERS if is_title_case(letters) else OTHER_LETTERS


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


class TokenTable:
    """Per token id (see the module docstring): ``bytes``, ``texts``, ``partial`` (ids holding part of a
    character), ``kind``, ``leading`` (leading letters, folded when checked), ``closes`` (has a non-letter, or is a
    special token: it ends the word) and ``starts`` (the letters a closing token ends with: the start of the next
    word; "" when none)."""

    def __init__(self, tokenizer: Any):
        self.bytes = token_bytes(tokenizer)
        texts = [None if b is None else b.decode("utf-8", errors="replace") for b in self.bytes]
        self.texts = [t or "" for t in texts]
        self.size = len(texts)
        self.partial: list[int] = []
        self.kind = [NO_LETTERS] * self.size
        self.leading = [""] * self.size
        self.closes = [False] * self.size
        self.starts = [""] * self.size
        for token_id, text in enumerate(self.texts):
            if REPLACEMENT in text:
                self.partial.append(token_id)
                continue
            match = LEADING.match(text)
            letters = match.group(0) if match else ""
            self.kind[token_id] = letter_kind(letters)
            cased = self.kind[token_id] in (LOWER_LETTERS, TITLE_LETTERS)
            self.leading[token_id] = letters.lower() if cased else letters
            self.closes[token_id] = len(letters) < len(text) or texts[token_id] is None
            if self.closes[token_id]:
                trailing = TRAILING.search(text[len(letters):])
                self.starts[token_id] = trailing.group(0) if trailing else ""

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

    def text_of(self, ids: list[int]) -> str:
        """All of ``ids`` as text, a special token read as a line break (it splits words)."""
        pieces = (self.bytes[i] if i < self.size and self.bytes[i] is not None else b"\n" for i in ids)
        return b"".join(pieces).decode("utf-8", errors="replace")

    def current_word(self, ids: list[int]) -> str | None:
        """The letters at the end of the text of ``ids`` (None: a character is incomplete, or every one of the
        ``TAIL_TOKENS`` last tokens is letters)."""
        text, whole = self.tail(ids[-TAIL_TOKENS:])
        if text.endswith(REPLACEMENT):
            return None
        match = TRAILING.search(text)
        word = match.group(0) if match else ""
        if whole and word == text and len(ids) >= TAIL_TOKENS:
            return None
        return word
