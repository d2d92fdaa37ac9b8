"""Building the prompt: the token ids the model reads for the next passage, trimmed to the context window.

Order: the header (``<BOS> <genre>``, or the genre in words, or a chat model's instruct request), the memory, the
lorebook entries the story calls for (``lorebook.py``), then the story, with the author's note cut in near its end
(``authors_note.py``). Each part is tokenized on its own so trimming drops exactly the story's oldest tokens — in
jumps when smart context is on (``context.py``), so the KV cache of the previous passage can be reused.

When everything does not fit (the window less the passage's tokens):

1. the header (``<BOS>``, genre) never goes;
2. the story's oldest text goes first;
3. lorebook entries beyond their budget are left out: the lorebook's own ``token_budget``, and never more than half
   of the room the header, memory and note leave when the story needs it — so the story keeps at least that half;
4. memory and the author's note are kept whole unless they alone take more than half of the window: then the note
   is left out, or memory's end is cut, with a one-line warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .authors_note import header_cap, place_note
from .context import WORD_END, SmartWindow
from .errors import StorytermError
from .instruct import chat_prompt, has_chat_template
from .lorebook import LorebookEntry
from .passage import plan_start
from .prompt import BOS_TOKEN, build_header, memory_text

if TYPE_CHECKING:
    from .generation import GenerationRequest
    from .loading import LoadedModel

# A long story is tokenized from this many characters per context-window token before its end (English BPE
# averages about 4); a tail that yields too few tokens falls back to the whole story.
TAIL_CHARS_PER_TOKEN = 8


def _word_boundary_at_or_after(text: str, start: int) -> int | None:
    """First index >= start where whitespace follows a non-space character, or None."""
    match = WORD_END.search(text, max(start - 1, 0))
    return match.end() if match else None


# ContextPart kinds, in prompt order (the story may come twice: before and after the author's note)
HEADER, MEMORY, LOREBOOK, STORY, NOTE, CLOSING = "header", "memory", "lorebook", "story", "note", "closing"


@dataclass(frozen=True)
class ContextPart:
    """One marked stretch of the prompt: what it is, a label (a lorebook entry's name), its token ids."""

    kind: str
    label: str
    token_ids: tuple[int, ...]

    @property
    def tokens(self) -> int:
        return len(self.token_ids)


@dataclass(frozen=True)
class PreparedPrompt:
    """The token ids fed to the model, after trimming to the context window."""

    input_ids: list[int]
    header_tokens: int  # header and memory (an instruct request: everything before the story)
    story_tokens: int
    context_trimmed: bool
    note_tokens: int = 0  # the author's note's tokens (between the story's start and its last sentences)
    warnings: tuple[str, ...] = ()  # one line each, e.g. an author's note left out because it was too long
    parts: tuple[ContextPart, ...] = ()  # input_ids cut into marked parts, in order (they add up to input_ids)
    left_out: tuple[str, ...] = ()  # one line per thing trimmed away: the story's oldest text, lorebook entries
    lorebook_tokens: int = 0  # the lorebook entries' tokens (after the header and memory)
    healed: str = ""  # token healing: the text of the story's last token, left out of input_ids (passage.HEALED)


def decode_ids(tokenizer: Any, ids: Sequence[int]) -> str:
    """Token ids as the exact text the model reads (special tokens and spacing kept)."""
    return tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)


class PromptBuilder:
    """Turns a GenerationRequest into the prompt's token ids for one loaded model.

    Remembers where a long story's window starts (smart context) between passages; ``reset()`` forgets it."""

    def __init__(self, loaded: LoadedModel, *, smart_context: bool = True):
        self.loaded = loaded
        tokenizer = loaded.tokenizer
        vocab = tokenizer.get_vocab()
        # Checkpoints that were not trained on the storyterm format (free mode hub models) get their own BOS.
        self.bos_text = BOS_TOKEN if BOS_TOKEN in vocab else (tokenizer.bos_token or "")
        # SentencePiece-style tokenizers mark a word start themselves: a space before the story would become a stray
        # "▁" token after <s>.
        first = tokenizer.convert_ids_to_tokens(tokenizer("a", add_special_tokens=False)["input_ids"][:1])
        self.join_space = "" if first and str(first[0]).startswith("▁") else " "
        self.smart_window = SmartWindow(self.encode_writer_text) if smart_context else None

    def reset(self) -> None:
        """Forget the remembered window start (the next long prompt chooses it afresh)."""
        if self.smart_window is not None:
            self.smart_window.reset()

    def instruct_on(self, request: GenerationRequest) -> bool:
        """Instruct mode: asked for, or by default whenever the model has a chat template."""
        if request.instruct is None:
            return has_chat_template(self.loaded.tokenizer)
        return request.instruct

    def encode_writer_text(self, text: str) -> list[int]:
        """The writer's text (memory, story) with special tokens split: typing ``<horror>`` or ``<EOS>`` in the
        editor must not switch the genre or end the story."""
        return list(self.loaded.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def prepare(self, request: GenerationRequest) -> PreparedPrompt:
        """Tokenize header, memory, lorebook entries and story separately and trim (the module docstring's order)."""
        story = plan_start(request.story).prompt_story  # trailing whitespace is the spacing rule's, not the model's
        instruct = self.instruct_on(request)
        window = self.loaded.context_window
        active = request.lorebook.active(request.story) if request.lorebook else []
        lore_ids = [self.encode_writer_text(self.join_space + memory_text(entry.text)) for entry in active]
        closing_ids: list[int] = []  # after the story: the end of an instruct request
        if instruct:
            header_ids, closing_ids = self._instruct_frame(request, request.memory, has_story=bool(story))
            base_tokens, leading_space = len(header_ids), False  # the story starts on its own line
        else:
            header_ids, base_tokens = self._header_ids(request)
            leading_space = bool(header_ids)
        budget = window - request.settings.max_new_tokens - len(closing_ids)
        note = place_note(request.authors_note, request.authors_note_depth, story, encode=self.encode_writer_text,
                          leading_space=leading_space, header_tokens=len(header_ids), budget=budget, window=window)
        story, budget = note.before, budget - len(note.tail_ids)  # the note and the story after it are kept whole
        warnings = [note.warning] if note.warning else []
        story_ids, tail_start = self._encode_story_tail(story, leading_space=leading_space, min_tokens=budget)
        # The lorebook's share: its own budget, and at most half the room left when the story needs more.
        room = budget - len(header_ids)
        story_need = len(story_ids) if tail_start is None else budget
        lore_cap = max(0, min(request.lorebook.token_budget, max(room - story_need, room // 2)))
        chosen, left_out = _within_budget(active, lore_ids, lore_cap)
        lore_flat = [token for index in chosen for token in lore_ids[index]]
        if instruct and chosen:  # a chat request carries the entries with the memory, in its own words
            memory = " ".join([memory_text(request.memory)] + [memory_text(active[i].text) for i in chosen]).strip()
            header_ids, _closing = self._instruct_frame(request, memory, has_story=bool(story))
            base_tokens, lore_flat = len(header_ids), []  # the frame now holds the entries
        trimmed = note.trimmed or tail_start is not None or len(header_ids) + len(lore_flat) + len(story_ids) > budget
        if trimmed:
            if instruct:  # an instruct request is kept whole: cut, it would stop making sense
                if len(header_ids) >= budget:
                    raise StorytermError(
                        f"the instruct request and a {request.settings.max_new_tokens}-token passage fill this "
                        f"model's {window}-token context: shorten the memory or the passage "
                        "length, or turn instruct mode off")
            else:
                # Keep the header whole unless memory (and note) alone take half the window: then memory's tail goes.
                cap = header_cap(len(header_ids), note.note_tokens, len(story_ids), budget - len(lore_flat), window)
                if cap < len(header_ids):
                    warnings.append(f"the memory is too long for this model's {window}-token "
                                    f"context: only its first {cap} tokens are read; shorten it")
                header_ids = header_ids[:cap]
            keep = budget - len(header_ids) - len(lore_flat)
            whole_story = len(story_ids)
            if self.smart_window is not None:
                story_ids = self.smart_window.story_ids(story, tail_start or 0, story_ids, keep)
            else:
                story_ids = story_ids[len(story_ids) - keep :] if keep > 0 else []
            if tail_start is not None or len(story_ids) < whole_story:
                left_out.insert(0, self._story_cut(story, story_ids, note.trimmed))
        elif note.trimmed:
            left_out.insert(0, self._story_cut(story, story_ids, True))
        input_ids = list(header_ids) + lore_flat + list(story_ids) + note.tail_ids + closing_ids
        if not input_ids:
            raise StorytermError("nothing to continue: this model has no start token, so type a prompt first")
        parts = [ContextPart(HEADER, "instruct request" if instruct else "header", tuple(header_ids[:base_tokens]))]
        parts.append(ContextPart(MEMORY, "memory", tuple(header_ids[base_tokens:])))
        if not instruct:
            parts += [ContextPart(LOREBOOK, active[i].label, tuple(lore_ids[i])) for i in chosen]
        parts.append(ContextPart(STORY, "story", tuple(story_ids)))
        parts.append(ContextPart(NOTE, "author's note", tuple(note.tail_ids[: note.note_tokens])))
        parts.append(ContextPart(STORY, "story after the note", tuple(note.tail_ids[note.note_tokens :])))
        parts.append(ContextPart(CLOSING, "end of the instruct request", tuple(closing_ids)))
        story_tokens = len(story_ids) + len(note.tail_ids) - note.note_tokens
        return PreparedPrompt(input_ids, len(header_ids), story_tokens, trimmed, note.note_tokens, tuple(warnings),
                              tuple(part for part in parts if part.token_ids), tuple(left_out), len(lore_flat))

    def _story_cut(self, story: str, kept_ids: list[int], note_trimmed: bool) -> str:
        """One line saying how much of the story's start the window leaves out."""
        if note_trimmed:
            return "story: all of it before the author's note, and the oldest part after it"
        kept = len(decode_ids(self.loaded.tokenizer, kept_ids).strip())
        cut = max(0, len(story.strip()) - kept)
        return f"story: its oldest {cut:,} characters"

    def _header_ids(self, request: GenerationRequest) -> tuple[list[int], int]:
        """``<BOS> <genre>`` for genre tokens, ``<BOS> This is a horror story.`` in words, then the memory; and how
        many of the ids come before the memory."""
        if request.genre is not None and not self.loaded.genres:
            base = f"{self.bos_text} {request.word_genres.header(request.genre)}".strip()
        else:
            base = build_header(request.genre)
            if self.bos_text != BOS_TOKEN:
                base = (self.bos_text + base.removeprefix(BOS_TOKEN)).strip()
        header_ids = list(self.loaded.tokenizer(base, add_special_tokens=False)["input_ids"]) if base else []
        base_tokens = len(header_ids)
        memory = memory_text(request.memory)
        if memory:
            header_ids += self.encode_writer_text((self.join_space if base else "") + memory)
        return header_ids, base_tokens

    def _instruct_frame(self, request: GenerationRequest, memory: str, *, has_story: bool
                        ) -> tuple[list[int], list[int]]:
        """The chat request's ids before the story (template markup, then the request in words) and after it."""
        tokenizer = self.loaded.tokenizer
        chat = chat_prompt(tokenizer, genre=request.genre, memory=memory, title=request.title, has_story=has_story)
        before = list(tokenizer(chat.template, add_special_tokens=False)["input_ids"]) if chat.template else []
        if chat.request:
            before += self.encode_writer_text(chat.request)
        after = list(tokenizer(chat.after, add_special_tokens=False)["input_ids"]) if chat.after else []
        return before, after

    def _encode_story_tail(self, story: str, *, leading_space: bool, min_tokens: int) -> tuple[list[int], int | None]:
        """The story's token ids, or only those of its tail when that alone fills the window (with the tail's start).

        A long draft is not tokenized whole for every passage: the tail of ``TAIL_CHARS_PER_TOKEN`` characters per
        window token, cut where whitespace follows a non-space character, gives the same ids as the whole text's
        end (byte-level BPE pre-tokens never span such a point). If the tail is too short, encode it all."""
        if not story:
            return [], None
        limit = max(min_tokens, 1) * TAIL_CHARS_PER_TOKEN
        if len(story) > limit:
            cut = _word_boundary_at_or_after(story, len(story) - limit)
            if cut is not None:
                tail_ids = self.encode_writer_text(story[cut:])
                if len(tail_ids) >= min_tokens:
                    return tail_ids, cut
        return self.encode_writer_text((self.join_space if leading_space else "") + story), None


def _within_budget(entries: list[LorebookEntry], ids: list[list[int]], cap: int) -> tuple[list[int], list[str]]:
    """Indexes of the entries that go in (in order, while they fit ``cap`` tokens) and a line per one left out."""
    chosen, left_out, used = [], [], 0
    for index, entry in enumerate(entries):
        if used + len(ids[index]) <= cap:
            chosen.append(index)
            used += len(ids[index])
        else:
            left_out.append(f"lorebook: {entry.label!r} ({len(ids[index])} tokens) is beyond the lorebook's budget")
    return chosen, left_out
