"""A GGUF file's own tokenizer (llama.cpp's), seen through the part of the transformers tokenizer interface that
storyterm's prompt, passage and steering code use.

The ids always match the model's (llama.cpp tokenizes), so nothing is converted: the prompt builder, the spacing
rule, banned words and stop sequences work on a GGUF model as on any other. Vocabulary pieces are llama.cpp's raw
token texts (``Ġthe`` for byte-level BPE, ``▁the`` and ``<0x0A>`` for SentencePiece), as transformers' are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# Token attributes (llama.h's llama_token_attr)
_ATTR_UNUSED = 1 << 1
_ATTR_CONTROL = 1 << 3
_ATTR_USER_DEFINED = 1 << 4


class GGUFTokenizer:
    """Wraps a ``llama_cpp.Llama``. ``split_special_tokens=True`` means llama.cpp's ``special=False``: text such as
    ``<|im_end|>`` typed by the writer stays text."""

    SPECIAL_TOKENS_ATTRIBUTES = ("bos_token", "eos_token", "pad_token")

    def __init__(self, llama: Any, metadata: dict[str, str] | None = None):
        import llama_cpp

        self._llama = llama
        self._lib = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(llama.model)
        self._size = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self._pieces = [self._piece(i) for i in range(self._size)]
        attrs = [int(llama_cpp.llama_vocab_get_attr(self._vocab, i)) for i in range(self._size)]
        self._special = frozenset(i for i, a in enumerate(attrs) if a & (_ATTR_CONTROL | _ATTR_UNUSED))
        self._added = [i for i, a in enumerate(attrs) if a & (_ATTR_CONTROL | _ATTR_USER_DEFINED)]
        self._ids = {piece: i for i, piece in reversed(list(enumerate(self._pieces)))}  # first id wins
        self.bos_token_id = self._valid(llama_cpp.llama_vocab_bos(self._vocab))
        self.eos_token_id = self._valid(llama_cpp.llama_vocab_eos(self._vocab))
        self.pad_token_id = self._valid(llama_cpp.llama_vocab_pad(self._vocab))
        self.end_token_ids = [i for i in range(self._size) if llama_cpp.llama_vocab_is_eog(self._vocab, i)]
        self.chat_template = (metadata or {}).get("tokenizer.chat_template") or None
        self.model_max_length = int(llama.n_ctx())
        # SentencePiece vocabularies: llama.cpp gives the text after a special token its own word-start space, so
        # "<s> This" would read "<s> ▁ ▁This"; transformers (and the model's training) read "<s> ▁This". One space
        # after a special token is dropped before llama.cpp adds its own.
        space_prefix = (int(llama_cpp.llama_vocab_type(self._vocab)) == llama_cpp.LLAMA_VOCAB_TYPE_SPM
                        and (metadata or {}).get("tokenizer.ggml.add_space_prefix", "true").lower() != "false")
        specials = sorted({self._pieces[i] for i in self._added if self._pieces[i]}, key=len, reverse=True)
        self._space_after_special = (re.compile("(" + "|".join(map(re.escape, specials)) + ") ")
                                     if space_prefix and specials else None)

    def _piece(self, token_id: int) -> str:
        return self._lib.llama_vocab_get_text(self._vocab, token_id).decode("utf-8", errors="replace")

    def _valid(self, token_id: int) -> int | None:
        return int(token_id) if 0 <= int(token_id) < self._size else None

    # -- what transformers' tokenizers offer ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._size

    def get_vocab(self) -> dict[str, int]:
        return dict(self._ids)

    @property
    def bos_token(self) -> str | None:
        return None if self.bos_token_id is None else self._pieces[self.bos_token_id]

    @property
    def eos_token(self) -> str | None:
        return None if self.eos_token_id is None else self._pieces[self.eos_token_id]

    @property
    def pad_token(self) -> str | None:
        return None if self.pad_token_id is None else self._pieces[self.pad_token_id]

    @property
    def all_special_ids(self) -> list[int]:
        return sorted(self._special)

    @property
    def extra_special_tokens(self) -> list[str]:
        """Control and user-defined tokens besides BOS/EOS/PAD (a storyterm checkpoint's genre tokens)."""
        named = {self.bos_token_id, self.eos_token_id, self.pad_token_id}
        return [self._pieces[i] for i in self._added if i not in named]

    def convert_ids_to_tokens(self, ids: int | Sequence[int]) -> Any:
        if isinstance(ids, int):
            return self._pieces[ids] if 0 <= ids < self._size else None
        return [self._pieces[i] if 0 <= i < self._size else None for i in ids]

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> Any:
        if isinstance(tokens, str):
            return self._ids.get(tokens)
        return [self._ids.get(token) for token in tokens]

    def encode(self, text: str, add_special_tokens: bool = True, split_special_tokens: bool = False) -> list[int]:
        if not text:
            return [self.bos_token_id] if add_special_tokens and self.bos_token_id is not None else []
        if not split_special_tokens and self._space_after_special is not None:
            text = self._space_after_special.sub(r"\1", text)
        return list(self._llama.tokenize(text.encode("utf-8"), add_bos=add_special_tokens,
                                         special=not split_special_tokens))

    def __call__(self, text: str, add_special_tokens: bool = True, split_special_tokens: bool = False,
                 **_ignored: Any) -> dict[str, list[int]]:
        ids = self.encode(text, add_special_tokens=add_special_tokens, split_special_tokens=split_special_tokens)
        return {"input_ids": ids, "attention_mask": [1] * len(ids)}

    def decode(self, ids: Sequence[int] | Any, skip_special_tokens: bool = False, **_ignored: Any) -> str:
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):  # one id, as transformers accepts (its streamer decodes a single token so)
            ids = [ids]
        ids = [int(i) for i in ids if 0 <= int(i) < self._size]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self._special]
        return self._detokenize(ids, render_special=not skip_special_tokens).decode("utf-8", errors="replace")

    def _detokenize(self, ids: list[int], *, render_special: bool) -> bytes:
        """llama.cpp's whole-sequence detokenizer (``Llama.detokenize`` cuts pieces longer than 32 bytes)."""
        import ctypes

        if not ids:
            return b""
        tokens = (self._lib.llama_token * len(ids))(*ids)
        size = 16 * len(ids) + 64
        for _attempt in range(2):
            buffer = ctypes.create_string_buffer(size)
            written = self._lib.llama_detokenize(self._vocab, tokens, len(ids), buffer, size, False, render_special)
            if written >= 0:
                return buffer.raw[:written]
            size = -written + 1
        raise RuntimeError("llama.cpp could not detokenize these tokens")

    def batch_decode(self, rows: Sequence[Sequence[int]], **kwargs: Any) -> list[str]:
        return [self.decode(row, **kwargs) for row in rows]

    def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool = False,
                            add_generation_prompt: bool = True, **_ignored: Any) -> str:
        """The file's Jinja chat template rendered as transformers does (llama-cpp-python's formatter)."""
        if not self.chat_template:
            raise ValueError("this model has no chat template")
        if tokenize:
            raise ValueError("GGUFTokenizer renders chat templates as text only")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        formatter = Jinja2ChatFormatter(self.chat_template, eos_token=self.eos_token or "",
                                        bos_token=self.bos_token or "", add_generation_prompt=add_generation_prompt)
        return formatter(messages=messages).prompt
