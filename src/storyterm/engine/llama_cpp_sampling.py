"""Sampling for the GGUF engine with llama.cpp's own sampler chain, and the few Python logits processors that still
run, only on the steps where they can change something (issue 17).

Copying every token's logits out of llama.cpp into torch and through transformers' processors cost a fixed 3-4.5 ms
a token (0.63x llama-bench at the GPT-2 124M shape). So what can be native is native (``NativeSampler``):

- genre, BOS and PAD ids and banned words of one token: a logit bias of -inf (what SuppressTokens and NoBadWords do);
- the repetition penalty: llama.cpp's penalties sampler, whose history is fed with exactly the tokens the torch
  engine penalises (the prompt after the header, Memory and lorebook entries, then every new token), over a window
  that never drops one. Both divide a positive logit by the penalty and multiply a negative one, once per token id;
- temperature, top-k, top-p, min-p and typical-p in generate's order (temperature first, as the token
  probabilities are computed), then a seeded draw, or greedy.

What stays in Python (``StepHooks``), on the full logits row written back into llama.cpp's buffer before the chain
samples: the first-token spacing mask (steps 0 and 1), banned words of several tokens (only on a step whose tail
spells all but their last token), any other passage hook, and the word guard (every step, with every processor in
Python as before: it keeps state and may undo its own mask). Masks to -inf and the per-token penalty commute, so
the native order gives the same distribution as the torch engine's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .passage import FirstTokenMask
from .settings import SamplerSettings

FIRST_TOKEN_STEPS = 2  # FirstTokenMask acts on the first new token and, after a bare space, on the second


class NativeSampler:
    """One passage's llama.cpp sampler chain. ``close()`` frees it."""

    def __init__(self, lib: Any, n_vocab: int, settings: SamplerSettings, seed: int | None, *,
                 banned_ids: Sequence[int] = (), penalty_history: Sequence[int] | None = None, window: int = 0):
        """``penalty_history``: the tokens already subject to the repetition penalty (None: no native penalty);
        ``window``: how many tokens it must remember (history and new tokens)."""
        self._lib = lib
        params = lib.llama_sampler_chain_default_params()
        params.no_perf = True
        self._chain = lib.llama_sampler_chain_init(params)
        banned = sorted({int(i) for i in banned_ids if 0 <= int(i) < n_vocab})
        if banned:
            biases = (lib.llama_logit_bias * len(banned))()
            for slot, token in zip(biases, banned):
                slot.token, slot.bias = token, float("-inf")
            self._add(lib.llama_sampler_init_logit_bias(n_vocab, len(banned), biases))
        penalty = float(settings.repetition_penalty)
        if penalty_history is not None and penalty != 1.0:
            kept = 1 if not settings.do_sample else int(settings.top_k)
            if penalty > 1.0 and kept:
                # A penalty above 1 only lowers the scores of the ids it remembers (the history's and at most
                # window - history new ones), so the top k after it are among the top k + those before it: the
                # penalty (a hash look-up per candidate) runs on those, not on the whole vocabulary.
                remembered = len(set(penalty_history)) + max(0, window - len(penalty_history))
                self._add(lib.llama_sampler_init_top_k(kept + remembered))
            penalties = lib.llama_sampler_init_penalties(n_vocab, max(1, window), penalty, 0.0, 0.0)
            for token in penalty_history:
                lib.llama_sampler_accept(penalties, int(token))
            self._add(penalties)
        if not settings.do_sample:
            self._add(lib.llama_sampler_init_greedy())
            return
        if settings.temperature != 1.0:
            self._add(lib.llama_sampler_init_temp(float(settings.temperature)))
        if settings.top_k:
            self._add(lib.llama_sampler_init_top_k(int(settings.top_k)))
        if settings.top_p < 1.0:
            self._add(lib.llama_sampler_init_top_p(float(settings.top_p), 1))
        if settings.min_p > 0:
            self._add(lib.llama_sampler_init_min_p(float(settings.min_p), 1))
        if settings.typical_p < 1.0:
            self._add(lib.llama_sampler_init_typical(float(settings.typical_p), 1))
        self._add(lib.llama_sampler_init_dist(int(seed or 0) % 2**32))

    def _add(self, sampler: Any) -> None:
        self._lib.llama_sampler_chain_add(self._chain, sampler)

    def sample(self, ctx: Any) -> int:
        """The next token from the last decoded position's logits (accepted into the penalty's history)."""
        return int(self._lib.llama_sampler_sample(self._chain, ctx, -1))

    def close(self) -> None:
        if self._chain is not None:
            self._lib.llama_sampler_free(self._chain)
            self._chain = None


def split_banned(sequences: Sequence[Sequence[int]], eos_ids: Sequence[int]) -> tuple[list[int], list[list[int]]]:
    """Banned token sequences as (single tokens for the native bias, sequences of several tokens). An end token
    alone is never banned (as NoBadWordsLogitsProcessor does)."""
    single = [int(s[0]) for s in sequences if len(s) == 1 and int(s[0]) not in eos_ids]
    return single, [list(s) for s in sequences if len(s) > 1]


class StepHooks:
    """The Python logits processors of one passage and the steps they run on.

    ``every_step``: run at every step, in this order (the word guard's full list). Otherwise ``first``: the spacing
    mask, on the first ``FIRST_TOKEN_STEPS`` steps; ``always``: other passage hooks; ``multi_banned``: banned
    sequences of several tokens, only on steps whose ids end with all but their last token."""

    def __init__(self, *, every_step: Sequence[Any] = (), first: Sequence[Any] = (), always: Sequence[Any] = (),
                 multi_banned: Sequence[Sequence[int]] = (), eos_ids: Sequence[int] = ()):
        from transformers import NoBadWordsLogitsProcessor

        self.every_step = list(every_step)
        self.first = list(first)
        self.always = list(always)
        self._prefixes: dict[int, set[tuple[int, ...]]] = {}
        for sequence in multi_banned:
            self._prefixes.setdefault(len(sequence) - 1, set()).add(tuple(sequence[:-1]))
        self._banned = NoBadWordsLogitsProcessor([list(s) for s in multi_banned], list(eos_ids) or None) \
            if multi_banned else None

    @property
    def full_python(self) -> bool:
        """Every processor runs in Python at every step: the native chain only draws."""
        return bool(self.every_step)

    def active(self, step: int, ids: list[int]) -> list[Any]:
        """The processors to run before sampling new token ``step`` after ``ids`` (prompt and new tokens)."""
        if self.every_step:
            return self.every_step
        active = list(self.first) if step < FIRST_TOKEN_STEPS else []
        active += self.always
        if self._banned is not None and self._prefix_matches(ids):
            active.append(self._banned)
        return active

    def _prefix_matches(self, ids: list[int]) -> bool:
        return any(len(ids) >= length and tuple(ids[len(ids) - length:]) in prefixes
                   for length, prefixes in self._prefixes.items())


def split_passage_hooks(processors: Sequence[Any]) -> tuple[list[Any], list[Any], Any | None]:
    """The engine's passage hooks as (first-token masks, other hooks, the repetition penalty processor or None)."""
    from transformers import RepetitionPenaltyLogitsProcessor

    first, others, penalty = [], [], None
    for processor in processors:
        if isinstance(processor, FirstTokenMask):
            first.append(processor)
        elif isinstance(processor, RepetitionPenaltyLogitsProcessor):
            penalty = processor
        else:
            others.append(processor)
    return first, others, penalty
