"""Building the prompt: the token ids the model reads for the next passage, trimmed to the context window.

The header (``<BOS> <genre>``, or the genre in words, or a chat model's instruct request) and the memory come first,
then the story, with the author's note cut in near its end (``authors_note.py``). The story is tokenized separately
from the header so trimming drops exactly its oldest tokens — in jumps when smart context is on (``context.py``), so
the KV cache of the previous passage can be reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .authors_note import header_cap, place_note
from .context import WORD_END, SmartWindow
from .errors import StorytermError
from .instruct import chat_prompt, has_chat_template
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


@dataclass(frozen=True)
class PreparedPrompt:
    """The token ids fed to the model, after trimming to the context window."""

    input_ids: list[int]
    header_tokens: int
    story_tokens: int
    context_trimmed: bool
    note_tokens: int = 0  # the author's note's tokens (between the story's start and its last sentences)
    warnings: tuple[str, ...] = ()  # one line each, e.g. an author's note left out because it was too long


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
        """Tokenize header and story separately so trimming drops exactly the oldest story tokens."""
        story = plan_start(request.story).prompt_story  # trailing whitespace is the spacing rule's, not the model's
        closing_ids: list[int] = []  # after the story: the end of an instruct request
        if self.instruct_on(request):
            header_ids, closing_ids = self._instruct_frame(request, has_story=bool(story))
            leading_space = False  # the story starts on its own line
        else:
            header_ids = self._header_ids(request)
            leading_space = bool(header_ids)
        window = self.loaded.context_window
        budget = window - request.settings.max_new_tokens - len(closing_ids)
        note = place_note(request.authors_note, request.authors_note_depth, story, encode=self.encode_writer_text,
                          leading_space=leading_space, header_tokens=len(header_ids), budget=budget, window=window)
        story, budget = note.before, budget - len(note.tail_ids)  # the note and the story after it are kept whole
        warnings = [note.warning] if note.warning else []
        story_ids, tail_start = self._encode_story_tail(story, leading_space=leading_space, min_tokens=budget)
        trimmed = note.trimmed or tail_start is not None or len(header_ids) + len(story_ids) > budget
        if trimmed:
            if closing_ids:  # an instruct request is kept whole: cut, it would stop making sense
                if len(header_ids) >= budget:
                    raise StorytermError(
                        f"the instruct request and a {request.settings.max_new_tokens}-token passage fill this "
                        f"model's {window}-token context: shorten the memory or the passage "
                        "length, or turn instruct mode off")
            else:
                # Keep the header whole unless memory (and note) alone take half the window: then memory's tail goes.
                cap = header_cap(len(header_ids), note.note_tokens, len(story_ids), budget, window)
                if cap < len(header_ids):
                    warnings.append(f"the memory is too long for this model's {window}-token "
                                    f"context: only its first {cap} tokens are read; shorten it")
                header_ids = header_ids[:cap]
            keep = budget - len(header_ids)
            if self.smart_window is not None:
                story_ids = self.smart_window.story_ids(story, tail_start or 0, story_ids, keep)
            else:
                story_ids = story_ids[len(story_ids) - keep :] if keep > 0 else []
        input_ids = list(header_ids) + list(story_ids) + note.tail_ids + closing_ids
        if not input_ids:
            raise StorytermError("nothing to continue: this model has no start token, so type a prompt first")
        story_tokens = len(story_ids) + len(note.tail_ids) - note.note_tokens
        return PreparedPrompt(input_ids, len(header_ids), story_tokens, trimmed, note.note_tokens, tuple(warnings))

    def _header_ids(self, request: GenerationRequest) -> list[int]:
        """``<BOS> <genre>`` for genre tokens, ``<BOS> This is a horror story.`` in words, then the memory."""
        if request.genre is not None and not self.loaded.genres:
            base = f"{self.bos_text} {request.word_genres.header(request.genre)}".strip()
        else:
            base = build_header(request.genre)
            if self.bos_text != BOS_TOKEN:
                base = (self.bos_text + base.removeprefix(BOS_TOKEN)).strip()
        header_ids = self.loaded.tokenizer(base, add_special_tokens=False)["input_ids"] if base else []
        memory = memory_text(request.memory)
        if memory:
            header_ids += self.encode_writer_text((self.join_space if base else "") + memory)
        return list(header_ids)

    def _instruct_frame(self, request: GenerationRequest, *, has_story: bool) -> tuple[list[int], list[int]]:
        """The chat request's ids before the story (template markup, then the request in words) and after it."""
        tokenizer = self.loaded.tokenizer
        chat = chat_prompt(tokenizer, genre=request.genre, memory=request.memory, title=request.title,
                           has_story=has_story)
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
