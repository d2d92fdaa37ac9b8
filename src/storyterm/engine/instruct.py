"""Instruct mode: a chat model is asked, through its own chat template, to continue the story in the same voice.

The story, genre, memory and title become one user message; ``apply_chat_template(..., add_generation_prompt=True)``
wraps it, and the assistant's reply is the passage. One user message (no system turn) because some templates
(Gemma's) refuse a system role. The rendered prompt is cut around the story so a long story can lose its oldest
tokens while the request around it stays whole — the same rule as the genre header in plain mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import StorytermError
from .genres import genre_words, with_article

# Stands for the story while the template renders; split on afterwards (no template changes these characters).
_STORY_MARK = "\u2063STORYTERM-STORY\u2063"


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def eos_token_ids(tokenizer: Any, generation_config: Any = None, first: int | None = None) -> list[int]:
    """Every id that ends a passage: ``first`` (storyterm's ``<EOS>``), the checkpoint's generation_config
    ``eos_token_id`` — a list on instruct checkpoints that end turns with several tokens — and the tokenizer's EOS."""
    ids: list[int] = []
    configured = getattr(generation_config, "eos_token_id", None) if generation_config is not None else None
    candidates: Iterable[Any] = [first, *(configured if isinstance(configured, (list, tuple)) else [configured]),
                                 getattr(tokenizer, "eos_token_id", None)]
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0 and value not in ids:
            ids.append(value)
    return ids


@dataclass(frozen=True)
class ChatPrompt:
    """The rendered chat request split around the story: ``template + request + story + after`` is the whole prompt.

    ``request`` (the writer's title, memory and genre in our words) is tokenized as writer text, so a ``<|im_end|>``
    typed into the memory stays text; ``template`` and ``after`` are the template's own markup."""

    template: str
    request: str
    after: str


def request_text(*, genre: str | None, memory: str = "", title: str = "", has_story: bool = True) -> str:
    """The user message, without the story (which follows it)."""
    kind = f"{with_article(genre_words(genre))} story" if genre else "a story"
    lines = []
    if has_story:
        lines.append(f"We are co-writing {kind}. Continue the story below from exactly where it stops, in the same "
                     "voice, tense and style. Reply with the next few sentences of the story only: no title, no "
                     "heading, no comments, and do not repeat the text.")
    else:
        lines.append(f"We are co-writing {kind}. Write its first few sentences. Reply with the story only: no "
                     "title, no heading, no comments.")
    title = " ".join(title.split())
    if title:
        lines.append(f"Title: {title}")
    memory = memory.strip()
    if memory:
        lines.append(f"Keep in mind: {memory}")
    if has_story:
        lines.append("The story so far:")
    return "\n\n".join(lines) + ("\n\n" if has_story else "")


def chat_prompt(tokenizer: Any, *, genre: str | None, memory: str = "", title: str = "",
                has_story: bool = True) -> ChatPrompt:
    """Render the chat template around a placeholder story. StorytermError if the template cannot be used."""
    request = request_text(genre=genre, memory=memory, title=title, has_story=has_story)
    content = request + _STORY_MARK
    try:
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
    except Exception as error:  # noqa: BLE001 - a template that fails to render: say so in our words
        raise StorytermError(
            "this model's chat template could not be used for instruct mode; turn instruct mode off (--no-instruct)"
        ) from error
    if not isinstance(rendered, str) or rendered.count(_STORY_MARK) != 1:
        raise StorytermError(
            "this model's chat template changes the request text; turn instruct mode off (--no-instruct)"
        )
    before, after = rendered.split(_STORY_MARK)
    if not before.endswith(request):  # the template rewrote the request text: keep it as the template's
        return ChatPrompt(before, "", after)
    return ChatPrompt(before[: len(before) - len(request)], request, after)
