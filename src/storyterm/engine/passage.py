"""Where a passage starts and where it ends, for every tokenizer (byte-level BPE and SentencePiece alike).

Start: the story's trailing whitespace is never fed to the model (a trained model reads "…end. " as "the story is
over" and ends at once); instead the first new token is restricted by how the story ends — after whitespace or a
blank line, the start of a new word; after a finished word, a new word or punctuation; after punctuation, a new word
or a closing quote. So a passage never glues onto the last word, never opens with stray punctuation after a blank
line, and never begins with the end-of-text token. One exception: when the writer's own text ends mid-word ("Then
Tav"), the passage may also finish that word ("i walked in" → "Tavi"). Mid-word is decided with the model's word
list (``unfinished_word``): the last word is not a word of the list or of the story, but begins one. A model without
a word list (a writer's GPT-2, Llama, Qwen checkpoint) tells it the same way with English words and its vocabulary's
(``TokenSurfaces.whole_words``), then lets the model finish the word by token healing (``HEALED``): the story's last
token is left out of the prompt and the first new token must begin with its text ("The dra" is read as "The", then
" dra" → " dragon" or " drama", or " dra" itself and a new word); the passage is what follows that text. The
app's own texts (starters, title prompts) end with a space (``opening_text``): always a new word.

End: with ``trim_sentences`` the passage may run a little past ``max_new_tokens`` to finish its sentence
(``SentenceStop``); whatever is still unfinished is cut back to the last sentence end (KoboldAI's "trim incomplete
sentences"), or to the last whole word when the passage has no sentence end at all.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transformers import LogitsProcessor, StoppingCriteria

from .context import SENTENCE_END
from .prompt import opening_text  # noqa: F401 - part of the spacing rule, kept in prompt.py for the TUI's fast start

if TYPE_CHECKING:
    import torch

DECODE_KWARGS = {"skip_special_tokens": True, "clean_up_tokenization_spaces": False}

# A passage may run this share past max_new_tokens (at least GRACE_MIN_TOKENS) to finish its sentence.
GRACE_SHARE = 0.25
GRACE_MIN_TOKENS = 8
# The writer's own words an unfinished word may begin are read from this much of the story's end (and Memory): the
# names in use, at a cost that does not grow with a long draft.
WORD_SCAN_CHARS = 20_000

# How the story ends decides which first tokens may follow.
START = "start"  # an instruct reply (a new turn): a word or a quotation, whatever the story ends with
STORY_START = "story_start"  # no story yet: a sentence's start, as AFTER_SENTENCE (the built-in model opened 8 of 48
# new stories with a fragment: "urging to the police", "94 hours")
AFTER_SPACE = "after_space"  # whitespace or a blank line: a new word (the story's whitespace stays, the model's goes)
AFTER_WORD = "after_word"  # a letter or digit: a new word or punctuation — never glued onto the word
MID_WORD = "mid_word"  # the writer's unfinished word: its continuation (letters at once), a new word or punctuation
HEALED = "healed"  # no word list, an unfinished last word: its last token is written again, perhaps longer
AFTER_PUNCT = "after_punct"  # , ; : … ) and closing quotes: a new word or a closing quote
# A full stop, ! or ? (not an ellipsis), perhaps then whitespace: a new sentence, a capital or a quotation. The
# built-in model opened 11 of 108 such passages with a lower-case fragment (" ing on the…"). An open quote goes on
# with a new sentence inside it: a closing quote token cannot be told from one that glues a word on ("'oner").
AFTER_SENTENCE = "after_sentence"
FREE = "free"  # an opening quote, bracket, dash…: any visible token
BARE_SPACE = "bare_space"  # tokens that are only whitespace
WORD = "word_piece"  # a word or quotation that starts at once (after a bare-space token)
STORY_WORD = "story_word"  # the same in an instruct reply: no "["
SENTENCE_WORD = "sentence_word"  # the same at a new sentence

_FALLBACK = {AFTER_SENTENCE: AFTER_PUNCT, STORY_START: START, SENTENCE_WORD: WORD}
_WORD_START = re.compile(r"\s+[\w\"'“‘(\[]")  # a new word (or a quotation) after whitespace
_WORD = re.compile(r"[\w\"'“‘(\[]")
# A reply's first word, not "[": there a bracket is a model imitating the Memory header it was trained with
# ("[Grail] In this…" from the built-in model), never the writer's text. A sentence opener leaves it out too.
_STORY_WORD = re.compile(r"[\w\"'“‘(]")
_SENTENCE_START = re.compile(r"\s*" + _STORY_WORD.pattern)
_SENTENCE_ENDED = re.compile(r"(?<!\.)[.!?]$")  # "..." is an ellipsis: a sentence may go on after it
_FIRST_VISIBLE = re.compile(r"\s*(\S)")
_CONTINUATION = re.compile(r"[^\W\d_]")  # letters straight on: the same word goes on
_TRAILING_WORD = re.compile(r"[^\W\d_]+$")
_WORDS = re.compile(r"[^\W\d_]+")
_WHOLE_WORD = re.compile(r" [^\W\d_]+")  # a token that is a whole word (after a space)
_PUNCT_AFTER_WORD = re.compile(r"[.,;:!?…)\]}\"'”’]")
_CLOSING = re.compile(r"[\"'”’)\]}]")
_ENDS_AT_SENTENCE = re.compile(r"[.!?…][\"'”’)\]]*\s*$")
_SENTENCE_TAIL = re.compile(r"[\"'”’)\]]*\s*")  # a closing quote, or the space the built-in model ends with
_LAST_WORD = re.compile(r"\s+\S*$")

# Endings (GenerationResult.endings): why a passage ends where it does.
END_OF_TEXT = "end-of-text"  # the model ended it
SENTENCE = "sentence"  # it ran to its length and ends at a sentence end (finished within the grace, or already there)
TRIMMED = "trimmed"  # it ran to its length; the unfinished sentence after its last sentence end was cut off
WORD = "word"  # it ran to its length with no sentence end at all; a possibly unfinished last word was cut off
LENGTH = "length"  # it ran to its length and trimming was off: as the model left it
STOPPED = "stopped"  # the writer stopped it


@dataclass(frozen=True)
class StartPlan:
    """How a story and its next passage meet."""

    prompt_story: str  # the story as the model reads it: trailing whitespace removed
    kind: str  # STORY_START, AFTER_SENTENCE, AFTER_SPACE, AFTER_WORD, MID_WORD, AFTER_PUNCT or FREE
    drop_leading_space: bool  # the story already ends with whitespace (or is empty): the passage's own goes


def plan_start(story: str, unfinished: Callable[[str, str], bool] | None = None) -> StartPlan:
    """The one spacing rule between a story and its next passage. ``unfinished(word, story_before_it)``: whether the
    story's last word is unfinished (``unfinished_word`` with the model's word list); None: every word is finished."""
    stripped = story.strip()
    if not stripped:
        return StartPlan("", STORY_START, True)
    prompt_story = story.lstrip().rstrip()
    last = prompt_story[-1]
    spaced = prompt_story != story.lstrip()
    if _SENTENCE_ENDED.search(prompt_story):
        kind = AFTER_SENTENCE
    elif spaced:
        kind = AFTER_SPACE
    elif last.isalnum():
        word = _TRAILING_WORD.search(prompt_story)
        kind = (MID_WORD if word and unfinished is not None and unfinished(word.group(0), prompt_story[: word.start()])
                else AFTER_WORD)
    elif last in ".,;:!?…)]}”’" or (last in "\"'" and len(prompt_story) > 1 and not prompt_story[-2].isspace()):
        kind = AFTER_PUNCT
    else:
        kind = FREE
    return StartPlan(prompt_story, kind, spaced)


def _opens_sentence(surface: str, spaced: bool | None) -> bool:
    """A new sentence's first word: a letter that is not lower-case, or an opening quotation. Not a digit: the
    built-in model's were fragments (". 00, the crew…"), and prose spells a sentence's first number out."""
    if spaced is not False:  # True: after whitespace; None: with or without it
        first = _FIRST_VISIBLE.match(surface)
        if first is None or (spaced and not surface[:1].isspace()):
            return False
        char = first.group(1)
    else:
        char = surface[:1]
    return (char.isalpha() and not char.islower()) or (char != "" and char in "\"'“‘(")


def unfinished_word(word: str, other_text: str, known: frozenset[str] | set[str], ordered: Sequence[str]) -> bool:
    """True when ``word`` (the story's last word), lower-cased, is neither a known word nor a word of ``other_text``
    (the story before it, Memory: its last ``WORD_SCAN_CHARS``) but begins one of them: "Tav" begins "tavern", or
    "Tavi" from Memory; "walk" is a word. ``ordered``: the known words, sorted."""
    folded = word.lower()
    if folded in known:
        return False
    others = {w.lower() for w in _WORDS.findall(other_text[-WORD_SCAN_CHARS:])}
    if folded in others:
        return False
    index = bisect.bisect_left(ordered, folded)
    if index < len(ordered) and ordered[index].startswith(folded):
        return True
    return any(other.startswith(folded) for other in others)


def after_healed(pieces: Iterable[str], healed: str) -> Iterator[str]:
    """The streamed text after ``healed`` (the story's own last token, which a healed passage writes again)."""
    for piece in pieces:
        if healed and piece:
            if healed.startswith(piece):
                healed, piece = healed[len(piece):], ""
            elif piece.startswith(healed):
                piece, healed = piece[len(healed):], ""
            else:
                healed = ""  # not the healed text after all: shown as it is, as the final text is
        if piece:
            yield piece


def without_healed(text: str, healed: str) -> str:
    """A healed passage's text after the story's own (``healed``, the left-out token's text, written again first)."""
    return text[len(healed):] if healed and text.startswith(healed) else text


def grace_tokens(max_new_tokens: int) -> int:
    return max(GRACE_MIN_TOKENS, math.ceil(max_new_tokens * GRACE_SHARE))


def decode_continuation(tokenizer: Any, anchor: list[int], new_ids: list[int]) -> str:
    """The text ``new_ids`` add after ``anchor`` (the prompt's last token). Decoding the new tokens alone would lose
    the space SentencePiece decoders strip from the first token ("…lighthouse.tokenizers")."""
    if not new_ids:
        return ""
    before = tokenizer.decode(anchor, **DECODE_KWARGS) if anchor else ""
    return tokenizer.decode(list(anchor) + list(new_ids), **DECODE_KWARGS)[len(before):]


class TokenSurfaces:
    """The text each token adds when it follows a word, computed once per tokenizer."""

    def __init__(self, tokenizer: Any, eos_ids: list[int] | tuple[int, ...] = ()):
        import torch

        anchor = [i for i in tokenizer("a", add_special_tokens=False)["input_ids"]][-1:]
        before = tokenizer.decode(anchor, **DECODE_KWARGS)
        rows = [anchor + [i] for i in range(len(tokenizer))]
        decoded = tokenizer.batch_decode(rows, **DECODE_KWARGS)
        self.surfaces = [text[len(before):] for text in decoded]
        self.vocab_size = len(self.surfaces)
        self._masks: dict[str, torch.Tensor] = {}
        self._healing: dict[str, torch.Tensor | None] = {}
        self._whole_words: tuple[frozenset[str], list[str]] | None = None
        self._end_rule_parts: tuple[Any, Any, frozenset[int], frozenset[int]] | None = None  # made once per model
        self._eos_ids = [int(i) for i in eos_ids]
        self._torch = torch

    def allowed_mask(self, kind: str) -> torch.Tensor | None:
        """A bool mask over the model's vocabulary of the tokens that may start a passage; None: no restriction."""
        if kind not in self._masks:
            tests = {
                START: lambda s: _SENTENCE_START.match(s),
                AFTER_SPACE: lambda s: _WORD_START.match(s),
                AFTER_WORD: lambda s: _WORD_START.match(s) or _PUNCT_AFTER_WORD.match(s),
                MID_WORD: lambda s: _WORD_START.match(s) or _PUNCT_AFTER_WORD.match(s) or _CONTINUATION.match(s),
                AFTER_PUNCT: lambda s: _WORD_START.match(s) or _CLOSING.match(s),
                AFTER_SENTENCE: lambda s: _opens_sentence(s, spaced=True),
                STORY_START: lambda s: _opens_sentence(s, spaced=None),
                FREE: lambda s: s.strip(),
                BARE_SPACE: lambda s: not s.strip(),
                WORD: lambda s: _WORD.match(s),
                STORY_WORD: lambda s: _STORY_WORD.match(s),
                SENTENCE_WORD: lambda s: _opens_sentence(s, spaced=False),
            }
            test = tests[kind]
            mask = self._torch.zeros(self.vocab_size, dtype=self._torch.bool)
            for index, surface in enumerate(self.surfaces):
                if surface and test(surface):
                    mask[index] = True
            for eos_id in self._eos_ids:
                if 0 <= eos_id < self.vocab_size:
                    mask[eos_id] = False
            self._masks[kind] = mask
        mask = self._masks[kind]
        if not bool(mask.any()):
            # A vocabulary with no capitalised word token (tiny or unusual ones): a word, as before.
            return self.allowed_mask(_FALLBACK[kind]) if kind in _FALLBACK else None
        return mask

    def whole_words(self) -> tuple[frozenset[str], list[str]]:
        """How a model without a word list tells a finished last word from a half-written one (``unfinished_word``):
        (the words that count as finished: ``english_words`` and the vocabulary's whole-word tokens — a space and
        letters — of 4 letters or more; the words a half-written one may begin, sorted: both, whole-word tokens of
        any length). Short whole-word tokens are as often pieces (" dra", " sw") as words."""
        if self._whole_words is None:
            from .words import english_words

            vocabulary = {surface[1:].lower() for surface in self.surfaces if _WHOLE_WORD.fullmatch(surface)}
            english = english_words()
            finished = english | {word for word in vocabulary if len(word) >= 4}
            self._whole_words = (frozenset(finished), sorted(english | vocabulary))
        return self._whole_words

    def healing_mask(self, healed: str) -> torch.Tensor | None:
        """The tokens whose text begins with ``healed`` (the left-out token's; never an end token); None when only
        one token does, so healing could only write that token again."""
        if healed in self._healing:
            return self._healing[healed]
        mask = None
        if healed.strip():
            mask = self._torch.tensor([surface.startswith(healed) for surface in self.surfaces],
                                      dtype=self._torch.bool)
            for eos_id in self._eos_ids:
                if 0 <= eos_id < self.vocab_size:
                    mask[eos_id] = False
            mask = mask if int(mask.sum()) > 1 else None
        self._healing[healed] = mask
        return mask

    def healing_first_token_mask(self, healed: str, prompt_length: int) -> FirstTokenMask | None:
        """The first new token of a healed prompt begins with ``healed``, the text of the token left out."""
        allowed = self.healing_mask(healed)
        if allowed is None:
            return None
        return FirstTokenMask(prompt_length, allowed, self._torch.zeros_like(allowed), self._torch.ones_like(allowed))

    def end_at_sentence_hook(self, prompt_length: int) -> EndAtSentenceEnd | None:
        """The processor that lets the model end a passage only right after a sentence end; None: no end token."""
        if not self._eos_ids:
            return None
        if self._end_rule_parts is None:
            ends = self._torch.tensor([bool(_ENDS_AT_SENTENCE.search(s.rstrip())) for s in self.surfaces],
                                      dtype=self._torch.bool)
            tails = self._torch.tensor([bool(_SENTENCE_TAIL.fullmatch(s)) for s in self.surfaces],
                                       dtype=self._torch.bool)
            self._end_rule_parts = (ends, tails, frozenset(ends.nonzero().flatten().tolist()),
                                    frozenset(tails.nonzero().flatten().tolist()))
        return EndAtSentenceEnd(prompt_length, *self._end_rule_parts, self._eos_ids)

    def first_token_mask(self, kind: str, prompt_length: int) -> FirstTokenMask | None:
        allowed = self.allowed_mask(kind)
        if allowed is None:
            return None
        follow_up = {START: STORY_WORD, STORY_START: SENTENCE_WORD, AFTER_SENTENCE: SENTENCE_WORD}.get(kind, WORD)
        bare_space, word = self.allowed_mask(BARE_SPACE), self.allowed_mask(follow_up)
        if bare_space is None or word is None:
            bare_space = self._torch.zeros_like(allowed)
            word = self._torch.ones_like(allowed)
        return FirstTokenMask(prompt_length, allowed, bare_space, word)


class FirstTokenMask(LogitsProcessor):
    """At the first new token, allows just the tokens in ``allowed`` (the spacing rule's choice). A row whose first
    token was bare whitespace (tokenizers without a " word" token for everything) must then go on with a word."""

    def __init__(self, prompt_length: int, allowed: torch.Tensor, bare_space: torch.Tensor, word: torch.Tensor):
        self.prompt_length = prompt_length
        self.allowed = allowed | bare_space
        self.bare_space = bare_space
        self.word = word

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[-1] - self.prompt_length
        if step == 0:
            return scores.masked_fill(~_fit(self.allowed, scores), float("-inf"))
        if step == 1:
            after_space = _fit(self.bare_space, scores)[input_ids[:, -1].clamp(max=scores.shape[-1] - 1)]
            if bool(after_space.any()):
                blocked = after_space[:, None] & ~_fit(self.word, scores)[None, :]
                return scores.masked_fill(blocked, float("-inf"))
        return scores


class EndAtSentenceEnd(LogitsProcessor):
    """With "end at sentence" on, the end token only right after a sentence end (the last token ends one, or is a
    closing quote or whitespace after one): the built-in model ended 1 passage in 84 mid-sentence ("After a robbery
    gone wrong, the")."""

    def __init__(self, prompt_length: int, sentence_ends: torch.Tensor, tails: torch.Tensor,
                 ending_ids: frozenset[int], tail_ids: frozenset[int], eos_ids: list[int]):
        """``ending_ids`` / ``tail_ids``: the ids the two masks hold (the one-row path reads them as plain ints)."""
        self.prompt_length = prompt_length
        self.sentence_ends, self.tails = sentence_ends, tails
        self._ending_ids, self._tail_ids = ending_ids, tail_ids
        self.eos_ids = eos_ids

    def allows_end(self, ids: Sequence[int]) -> bool:
        """The same rule for the tokens so far, at least one new (the GGUF engine asks only when the end token was
        drawn)."""
        last = ids[-1]
        return last in self._ending_ids or (last in self._tail_ids and len(ids) > 1 and ids[-2] in self._ending_ids)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[-1] <= self.prompt_length:
            return scores  # the first token is never an end token (FirstTokenMask)
        if input_ids.shape[0] == 1 and input_ids.device.type == "cpu":  # one row on a CPU: plain ints, 5x faster
            if not self.allows_end(input_ids[0, -2:].tolist()):
                scores[0, [i for i in self.eos_ids if i < scores.shape[-1]]] = float("-inf")
            return scores
        if self.sentence_ends.device != input_ids.device:
            self.sentence_ends = self.sentence_ends.to(input_ids.device)
            self.tails = self.tails.to(input_ids.device)
        top = self.sentence_ends.shape[0] - 1
        last, before = input_ids[:, -1].clamp(max=top), input_ids[:, -2].clamp(max=top)
        ended = self.sentence_ends[last] | (self.tails[last] & self.sentence_ends[before])
        eos = [i for i in self.eos_ids if i < scores.shape[-1]]
        scores[:, eos] = scores[:, eos].masked_fill(~ended[:, None], float("-inf"))
        return scores


def _fit(mask: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """``mask`` sized to the scores' width (a model's embedding may be padded past the tokenizer's vocabulary)."""
    import torch

    width = scores.shape[-1]
    mask = mask.to(scores.device)
    if mask.shape[0] < width:
        mask = torch.cat([mask, torch.zeros(width - mask.shape[0], dtype=torch.bool, device=mask.device)])
    return mask[:width]


class SentenceStop(StoppingCriteria):
    """Past ``max_new_tokens``, ends each row as soon as a sentence that was unfinished at the limit has ended
    (one word past its end, so a closing quote is not lost; ``finish_passage`` cuts that word off)."""

    def __init__(self, tokenizer: Any, prompt_length: int, max_new_tokens: int, anchor: list[int]):
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.max_new_tokens = max_new_tokens
        self.anchor = anchor
        self._ends_at_limit: dict[int, int] = {}
        self.stopped_rows: set[int] = set()

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        import torch

        new = input_ids.shape[-1] - self.prompt_length
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if new < self.max_new_tokens:
            return done
        for row in range(input_ids.shape[0]):
            if row in self.stopped_rows:
                done[row] = True
                continue
            text = decode_continuation(self.tokenizer, self.anchor, input_ids[row, self.prompt_length:].tolist())
            ends = sum(1 for _ in SENTENCE_END.finditer(text))
            if row not in self._ends_at_limit:
                self._ends_at_limit[row] = ends
            elif ends > self._ends_at_limit[row]:
                self.stopped_rows.add(row)
                done[row] = True
        return done


def finish_passage(text: str, *, ended_by_model: bool, cancelled: bool, trim: bool,
                   finished_in_grace: bool = False) -> tuple[str, str]:
    """The passage as shown, and its ending (END_OF_TEXT, SENTENCE, TRIMMED, WORD, LENGTH or STOPPED).

    ``finished_in_grace``: SentenceStop ended it one word past a sentence end. Passages never end with whitespace:
    the next one brings its own space (see ``plan_start``)."""
    text = text.rstrip()
    if ended_by_model:
        return text, END_OF_TEXT
    if cancelled:
        return text, STOPPED
    if not trim:
        return text, LENGTH
    if not text or _ENDS_AT_SENTENCE.search(text):
        return text, SENTENCE
    ends = list(SENTENCE_END.finditer(text))
    if ends:
        return text[: ends[-1].end()], SENTENCE if finished_in_grace else TRIMMED
    if text[-1].isalnum():  # the last word may be unfinished: never leave half a word
        head = _LAST_WORD.sub("", text)
        if head.strip():
            return head, WORD
    return text, WORD


class SettledText:
    """Streams a passage to a place that cannot take text back (a terminal, a pipe): with trimming on, text after the
    last sentence end waits until the passage is done, since ``finish_passage`` may still cut it."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._seen = ""
        self._written = 0

    def feed(self, piece: str) -> str:
        """The part of the text so far that can be written now."""
        self._seen += piece
        if not self.enabled:
            upto = len(self._seen)
        else:
            ends = [match.end() for match in SENTENCE_END.finditer(self._seen, self._written)]
            upto = ends[-1] if ends else self._written
        ready, self._written = self._seen[self._written:upto], max(self._written, upto)
        return ready

    def finish(self, final: str) -> str:
        """The rest of ``final`` (the passage as it ended) after what was already written."""
        written = self._seen[: self._written]
        return final[len(written):] if final.startswith(written) else "\n" + final
