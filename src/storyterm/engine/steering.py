"""What the writer steers besides sampling: banned words and stop sequences.

Banned words: every way the model could spell the word is turned into a token sequence for transformers'
``NoBadWordsLogitsProcessor`` (its last token is blocked whenever the others were just written). "Every way" means
every segmentation of the word's bytes into vocabulary tokens (a model can write ``" dragon"`` as one token or as
``" dr" "agon"``), for the word as typed, in lower case, capitalised and in upper case, each with and without a
leading space. Without a leading space the word is also blocked inside longer words ("dragon" in "snapdragon");
a token that spells the word together with more letters ("dragons") is a different word and is not blocked.

Stop sequences: ``StopSequenceCriterion`` ends a row once its new text contains one; ``cut_at_stop`` removes the
stop and what followed from the final text, and ``StopScanner`` holds back streamed text that may still turn out to
be the start of a stop sequence, so the stop never shows on screen either.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from transformers import LogitsProcessorList, NoBadWordsLogitsProcessor, StoppingCriteria

from .errors import SettingsError
from .word_tokens import token_bytes

if TYPE_CHECKING:
    import torch

STOP_SEQUENCE = "stop-sequence"  # a passage's ending (GenerationResult.endings) when a stop sequence ended it
MAX_BANNED_WORDS = 200
MAX_BANNED_WORD_CHARS = 40
MAX_STOP_SEQUENCES = 16
MAX_STOP_CHARS = 100
# Segmentations of one spelling beyond this many are not enumerated (a long word in a tiny vocabulary has
# exponentially many); the tokenizer's own spelling is always among those kept.
MAX_SPELLINGS_PER_VARIANT = 2000


def validate_steering(banned_words: Sequence[str], stop_sequences: Sequence[str]) -> None:
    """SettingsError with a one-line message for the first bad banned word or stop sequence."""
    if isinstance(banned_words, str) or isinstance(stop_sequences, str):
        raise SettingsError("banned words and stop sequences must be lists of texts, not one text")
    if len(banned_words) > MAX_BANNED_WORDS:
        raise SettingsError(f"at most {MAX_BANNED_WORDS} banned words, got {len(banned_words)}")
    for word in banned_words:
        if not isinstance(word, str) or not word.strip():
            raise SettingsError(f"a banned word must be some text, got {word!r}")
        if len(word.strip()) > MAX_BANNED_WORD_CHARS:
            raise SettingsError(f"a banned word must be at most {MAX_BANNED_WORD_CHARS} characters, got {word!r}")
    if len(stop_sequences) > MAX_STOP_SEQUENCES:
        raise SettingsError(f"at most {MAX_STOP_SEQUENCES} stop sequences, got {len(stop_sequences)}")
    for stop in stop_sequences:
        if not isinstance(stop, str) or not stop:
            raise SettingsError(f"a stop sequence must be some text, got {stop!r}")
        if len(stop) > MAX_STOP_CHARS:
            raise SettingsError(f"a stop sequence must be at most {MAX_STOP_CHARS} characters, got {stop[:20]!r}…")


def word_variants(word: str) -> list[str]:
    """The spellings banned for ``word``: as typed, lower, capitalised, upper; with and without a leading space."""
    word = word.strip()
    forms = dict.fromkeys([word, word.lower(), word[:1].upper() + word[1:], word.capitalize(), word.upper()])
    return [spaced for form in forms for spaced in (form, " " + form)]


class BannedWords:
    """Builds ``bad_words_ids`` for a tokenizer; the vocabulary's bytes are read once."""

    def __init__(self, tokenizer: Any):
        self._tokenizer = tokenizer
        self._by_prefix: dict[int, list[tuple[bytes, int]]] | None = None
        self._cache: dict[tuple[str, ...], list[list[int]]] = {}

    def _tokens_by_first_byte(self) -> dict[int, list[tuple[bytes, int]]]:
        if self._by_prefix is None:
            index: dict[int, list[tuple[bytes, int]]] = {}
            for token_id, data in enumerate(token_bytes(self._tokenizer)):
                if data:
                    index.setdefault(data[0], []).append((data, token_id))
            self._by_prefix = index
        return self._by_prefix

    def spellings(self, text: str) -> list[list[int]]:
        """Token sequences whose decoded bytes are exactly ``text`` (the tokenizer's own spelling first)."""
        own = list(self._tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])
        found = [own] if own else []
        target = text.encode("utf-8")
        index = self._tokens_by_first_byte()

        def walk(position: int, path: list[int]) -> Iterator[list[int]]:
            if position == len(target):
                yield list(path)
                return
            for data, token_id in index.get(target[position], ()):
                if target.startswith(data, position):
                    path.append(token_id)
                    yield from walk(position + len(data), path)
                    path.pop()

        for sequence in walk(0, []):
            if len(found) >= MAX_SPELLINGS_PER_VARIANT:
                break
            if sequence != own:
                found.append(sequence)
        return found

    def bad_words_ids(self, words: Iterable[str]) -> list[list[int]]:
        key = tuple(sorted({w.strip() for w in words if w.strip()}))
        if key not in self._cache:
            sequences: dict[tuple[int, ...], None] = {}
            for word in key:
                for variant in word_variants(word):
                    for sequence in self.spellings(variant):
                        sequences[tuple(sequence)] = None
            self._cache[key] = [list(s) for s in sequences]
        return self._cache[key]

    def processors(self, words: Sequence[str], eos_token_ids: Sequence[int]) -> LogitsProcessorList:
        ids = self.bad_words_ids(words) if words else []
        if not ids:
            return LogitsProcessorList()
        return LogitsProcessorList([NoBadWordsLogitsProcessor(ids, list(eos_token_ids) or None)])


def find_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """(index, stop) of the earliest stop sequence in ``text`` (the longest one when several start there)."""
    best: tuple[int, str] | None = None
    for stop in stops:
        index = text.find(stop)
        if index >= 0 and (best is None or index < best[0] or (index == best[0] and len(stop) > len(best[1]))):
            best = (index, stop)
    return best


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, str | None]:
    """``text`` up to its first stop sequence, and that stop (None when there is none)."""
    found = find_stop(text, stops) if stops else None
    return (text, None) if found is None else (text[: found[0]], found[1])


class StopScanner:
    """Filters streamed pieces: text that could still be the start of a stop sequence is held back until the next
    piece decides; once a stop appears, nothing from it on is shown."""

    def __init__(self, stops: Sequence[str]):
        self._stops = [s for s in stops if s]
        self._held = ""
        self.stop: str | None = None

    def feed(self, piece: str) -> str:
        if self.stop is not None:
            return ""
        if not self._stops:
            return piece
        text = self._held + piece
        found = find_stop(text, self._stops)
        if found is not None:
            # A longer stop may still begin at or before the one found ("a" found, " a" or "xa" coming): the next
            # piece decides, so hold back from there (else the stop reported differs from the whole text's).
            undecided = [start for start in range(found[0] + 1) for stop in self._stops
                         if len(stop) > len(text) - start and stop.startswith(text[start:])]
            if undecided:
                self._held = text[min(undecided):]
                return text[: min(undecided)]
            self._held, self.stop = "", found[1]
            return text[: found[0]]
        keep = max((n for stop in self._stops for n in range(1, len(stop)) if text.endswith(stop[:n])), default=0)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def finish(self) -> str:
        """What is still held back once the stream has ended (up to a stop that was waiting for a longer one)."""
        held, self._held = self._held, ""
        if self.stop is not None:
            return ""
        found = find_stop(held, self._stops)
        if found is None:
            return held
        self.stop = found[1]
        return held[: found[0]]

    def filter(self, pieces: Iterable[str]) -> Iterator[str]:
        for piece in pieces:
            shown = self.feed(piece)
            if shown:
                yield shown
        rest = self.finish()
        if rest:
            yield rest


class StopSequenceCriterion(StoppingCriteria):
    """Ends each row once the text it generated contains a stop sequence (only the newest tokens are decoded)."""

    def __init__(self, tokenizer: Any, prompt_length: int, stops: Sequence[str]):
        self._tokenizer = tokenizer
        self._prompt_length = prompt_length
        self._stops = list(stops)
        # Enough tokens to hold the longest stop (every token adds at least one byte) plus a split character.
        self._window = max(len(s.encode("utf-8")) for s in stops) + 4

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        import torch

        start = max(self._prompt_length, input_ids.shape[1] - self._window)
        rows = input_ids[:, start:].tolist()
        done = [
            any(stop in text for stop in self._stops)
            for text in self._tokenizer.batch_decode(rows, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        ]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
