"""What counts as a word, and as an *invented* word (a spelling the model made up).

Definitions, shared by the invented-word metric (``training.evaluate``, the sampling sweep) and the decoding guard
(:mod:`storyterm.engine.word_guard`):

* A **word** is a maximal run of letters (Unicode letters: ``str.isalpha`` without digits or ``_``). Anything else
  splits words: spaces, punctuation, digits, hyphens and apostrophes — "well-known" is "well" + "known", "don't" is
  "don" + "t", "1920s" is "s". Training text split the same way contains those parts, so splitting never invents.
* A word is **checked** when it is lower-case (``str.islower``: at least one cased letter and no capital). Words
  with a capital anywhere ("The", "McDonald", "theBig") and words of uncased scripts are free: names are free.
* The **known words** of a training text are all its words, lower-cased: a word counts as known if it occurs in
  the training text in any case ("however" is known from a sentence-initial "However").
* An **invented word** is a checked word that is not a known word. The **invented-word rate** of some texts is
  invented words / checked words, counting every occurrence.
* A **Title-case** word has a capital first letter and no other capital ("Anna", "Frogramed", "I"). The
  **capitalised invented-word rate** is the share of Title-case words whose lower-case form is neither a known word
  nor a word of the text the model was given (its prompt: names the writer put in the story or Memory are real).
  Words with a capital elsewhere ("McDonald", "NASA") stay free.

A checkpoint may ship its known words as ``words.txt``: one lower-case word per line, sorted, UTF-8. Optional; the
guard is only available for checkpoints that have it. Every word is kept, even one seen once (a rare word in the
training text is still a real spelling more often than not). A checkpoint exported as GGUF
(``training/export_gguf.py``) carries the same text in its metadata, under ``GGUF_WORDS_KEY``: one file to share.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

WORDS_FILE = "words.txt"
BUILTIN_WORDS = Path(__file__).resolve().parent.parent / "models" / "builtin" / WORDS_FILE
GGUF_WORDS_KEY = "storyterm.words"  # a GGUF file's words.txt, as one string (llama.cpp hands arrays to nobody)
# A run of letters: \w without digits and underscore.
WORD = re.compile(r"[^\W\d_]+")


def words_in(text: str) -> list[str]:
    """The words of ``text`` in order, as written (case kept)."""
    return WORD.findall(text)


def is_checked(word: str) -> bool:
    """True for a lower-case word, the only kind that can be invented."""
    return word.islower()


def is_title_case(word: str) -> bool:
    """A capital first letter and no other capital: "Anna", "I" (not "McDonald", "NASA", "iPhone")."""
    return word[:1].isupper() and (len(word) == 1 or word[1:].islower())


def known_words_from_texts(texts: Iterable[str]) -> set[str]:
    """Every word of ``texts``, lower-cased."""
    known: set[str] = set()
    for text in texts:
        known.update(word.lower() for word in WORD.findall(text))
    return known


def write_known_words(path: Path, words: Iterable[str]) -> Path:
    """Write ``words`` (lower-cased, sorted, one per line, UTF-8). ``path`` may be a checkpoint directory."""
    path = Path(path)
    if path.is_dir():
        path = path / WORDS_FILE
    lines = sorted({word.lower() for word in words if WORD.fullmatch(word)})
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def read_known_words(path: Path) -> frozenset[str]:
    """The words of a words file (or of ``words.txt`` in a directory). OSError if it cannot be read."""
    path = Path(path)
    if path.is_dir():
        path = path / WORDS_FILE
    return parse_known_words(path.read_text(encoding="utf-8"))


def parse_known_words(text: str) -> frozenset[str]:
    """The words of a words file's text (one per line)."""
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def checkpoint_words_reader(directory: Path | None) -> Callable[[], frozenset[str] | None] | None:
    """What reads a checkpoint directory's ``words.txt`` (when the guard is first used), or None without one."""
    if directory is None or not (Path(directory) / WORDS_FILE).is_file():
        return None
    return lambda: checkpoint_known_words(directory)


def gguf_words_reader(metadata: dict[str, str]) -> Callable[[], frozenset[str] | None] | None:
    """The same for a GGUF file's metadata (``GGUF_WORDS_KEY``), or None when the file has no word list."""
    text = metadata.get(GGUF_WORDS_KEY, "")
    if not text.strip():
        return None
    return lambda: parse_known_words(text) or None


def checkpoint_known_words(directory: Path | None) -> frozenset[str] | None:
    """The known words a checkpoint ships, or None when it has no readable, non-empty ``words.txt``."""
    if directory is None:
        return None
    try:
        words = read_known_words(Path(directory) / WORDS_FILE)
    except (OSError, UnicodeDecodeError):
        return None
    return words or None


@functools.cache
def english_words() -> frozenset[str]:
    """The built-in model's known words (film plots in English, names included): how a model without a word list
    tells a finished last word ("do", "dragon") from a half-written one ("dra", "sw") before healing it
    (``EngineBase.prepare_passage``). Empty when the file cannot be read."""
    return checkpoint_known_words(BUILTIN_WORDS.parent) or frozenset()


@dataclass(frozen=True)
class InventedWordReport:
    checked: int  # lower-case words written (every occurrence)
    invented: int  # of those, the ones not in the known words
    invented_words: Counter[str] = field(default_factory=Counter)  # each invented spelling -> occurrences

    @property
    def rate(self) -> float:
        """invented / checked; 0.0 when there was no checked word."""
        return self.invented / self.checked if self.checked else 0.0

    def to_dict(self, most_common: int | None = None) -> dict:
        return {
            "invented_word_rate": self.rate,
            "checked_words": self.checked,
            "invented_words_count": self.invented,
            "invented_words": dict(self.invented_words.most_common(most_common)),
        }


def invented_word_rate(texts: Iterable[str], known_words: Iterable[str]) -> InventedWordReport:
    """Count the checked and the invented words of ``texts`` (see the module docstring)."""
    known = known_words if isinstance(known_words, (set, frozenset)) else set(known_words)
    checked = 0
    invented: Counter[str] = Counter()
    for text in texts:
        for word in WORD.findall(text):
            if word.islower():
                checked += 1
                if word not in known:
                    invented[word] += 1
    return InventedWordReport(checked=checked, invented=sum(invented.values()), invented_words=invented)


def capitalised_invented_rate(texts_and_prompts: Iterable[tuple[str, str]],
                               known_words: Iterable[str]) -> InventedWordReport:
    """Like ``invented_word_rate`` for the Title-case words of each (text, its prompt): a word counts as invented
    when its lower-case form is not a known word and not a word of the prompt. ``checked``: Title-case words."""
    known = known_words if isinstance(known_words, (set, frozenset)) else set(known_words)
    checked = 0
    invented: Counter[str] = Counter()
    for text, prompt in texts_and_prompts:
        prompt_words = known_words_from_texts([prompt])
        for word in WORD.findall(text):
            if is_title_case(word):
                checked += 1
                folded = word.lower()
                if folded not in known and folded not in prompt_words:
                    invented[word] += 1
    return InventedWordReport(checked=checked, invented=sum(invented.values()), invented_words=invented)


def repeated_word_share(texts: Iterable[str], window: int = 12) -> float:
    """The share of words (3+ letters, any case) that repeat one of the ``window`` words before them in the same
    text: a small model's loops ("Cuba, Cuba. The Cuba…") score high, human plots ~4 % (names and "the" recur)."""
    repeated = total = 0
    for text in texts:
        words = [w.lower() for w in words_in(text) if len(w) >= 3]
        for index, word in enumerate(words):
            total += 1
            repeated += word in words[max(0, index - window):index]
    return repeated / total if total else 0.0
