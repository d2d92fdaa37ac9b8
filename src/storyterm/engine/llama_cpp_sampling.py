"""Sampling for the GGUF engine with llama.cpp's own sampler chain, and the few Python logits processors that still
run, only on the steps where they can change something (issue 17).

Copying every token's logits out of llama.cpp into torch and through transformers' processors cost a fixed 3-4.5 ms
a token (0.63x llama-bench at the GPT-2 124M shape). So what can be native is native (``NativeSampler``):

- genre, BOS and PAD ids and banned words of one token: a logit bias of -inf (what SuppressTokens and NoBadWords do);
- the repetition penalty (``RepetitionPenalty``): applied in place to llama.cpp's logits row with numpy, on exactly
  the ids the torch engine penalises (the prompt after the header, Memory and lorebook entries, then every new
  token); like transformers it divides a positive logit by the penalty and multiplies a negative one, once per id,
  in float32. llama.cpp's own penalties sampler needed a top-k of all remembered ids before it to be cheap (0.15 ms
  a token at 124M, a bucket sort over the vocabulary); this is 0.01 ms;
- top-k, temperature, top-p, min-p and typical-p: generate's distribution (temperature first there; it scales every
  logit alike, so top-k keeps the same ids before or after it, and after top-k it scales 50 logits, not the
  vocabulary), then a seeded draw, or greedy.

``llama_sampler_sample`` copies the whole row into a candidate array of (id, logit, p) and partially sorts it for
top-k: 0.2 ms a token at a 151 936-id vocabulary. With top-k on a large vocabulary (``TopKCandidates``) numpy finds
a small superset of the top k instead, and the same chain runs on those candidates (``llama_sampler_apply``): top-k
keeps the same k ids, sorted the same way, and the draw consumes the same random number, so the token is the one
``llama_sampler_sample`` draws (barring exact ties at the k-th logit). Greedy is numpy's argmax (the first maximum,
as llama.cpp's greedy sampler). The -inf bias is then written into the row with numpy too.

What stays in Python (``StepHooks``), on the full logits row written back into llama.cpp's buffer before the chain
samples: the first-token spacing mask (steps 0 and 1), banned words of several tokens (only on a step whose tail
spells all but their last token), any other passage hook, and the word guard (every step, with every processor in
Python as before: it keeps state and may undo its own mask). Masks to -inf and the per-token penalty commute, so
the native order gives the same distribution as the torch engine's.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

from .passage import EndAtSentenceEnd, FirstTokenMask
from .settings import SamplerSettings

FIRST_TOKEN_STEPS = 2  # FirstTokenMask acts on the first new token and, after a bare space, on the second
TOP_K_COLUMNS = 1024  # TopKCandidates: the row seen as (rows, 1024); a top-k of up to a quarter of that is filtered


class TopKCandidates:
    """A small superset of the ``k`` largest logits of a row of ``n_vocab``, as llama.cpp's candidate array (ids in
    ascending order, as ``llama_sampler_sample`` lays them out). The row's first ``rows x 1024`` logits are seen as a
    grid; the k-th largest of its 1024 column maxima is a threshold at least k logits reach, so every one of the top
    k is at or above it, and in practice only ~k ids are. Few numpy calls on purpose: right after a decode each call
    costs tens of microseconds (cold caches), whatever its size."""

    CAPACITY = 4096  # candidates the reused array holds; a row with more goes to llama.cpp whole

    def __init__(self, lib: Any, n_vocab: int, k: int):
        import numpy as np

        self._lib, self._np, self._k = lib, np, k
        self._grid = (n_vocab // TOP_K_COLUMNS) * TOP_K_COLUMNS
        self._data = np.zeros(self.CAPACITY, dtype=np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")]))
        self._array = lib.llama_token_data_array(
            data=self._data.ctypes.data_as(ctypes.POINTER(lib.llama_token_data)), size=0, selected=-1, sorted=False)
        self._array_ref = ctypes.byref(self._array)

    @staticmethod
    def applies(n_vocab: int, k: int) -> bool:
        return 0 < k <= TOP_K_COLUMNS // 4 and n_vocab >= 4 * TOP_K_COLUMNS

    def sample(self, chain: Any, row: Any) -> int | None:
        """Run ``chain`` (top-k first) on the candidates of ``row`` and return the drawn id; None when they are
        fewer than k (NaN logits) or more than the array holds: the caller samples the whole row."""
        np, k = self._np, self._k
        maxima = row[: self._grid].reshape(-1, TOP_K_COLUMNS).max(axis=0)
        threshold = np.partition(maxima, TOP_K_COLUMNS - k)[TOP_K_COLUMNS - k]
        ids = np.flatnonzero(row >= threshold)  # the ids past the grid are scanned too
        count = len(ids)
        if not k <= count <= self.CAPACITY:
            return None
        data, array = self._data, self._array
        data["id"][:count], data["logit"][:count] = ids, row[ids]
        array.size, array.selected, array.sorted = count, -1, False
        self._lib.llama_sampler_apply(chain, self._array_ref)
        token = int(data["id"][array.selected])  # the chain sorted the array in place
        self._lib.llama_sampler_accept(chain, token)
        return token


class RepetitionPenalty:
    """transformers' RepetitionPenaltyLogitsProcessor on llama.cpp's logits row, in place: every id seen once, a
    positive logit divided by the penalty, a negative one multiplied (float32, as torch computes it)."""

    def __init__(self, penalty: float, history: Sequence[int]):
        import numpy as np

        self._np = np
        self._penalty = np.float32(penalty)
        self._seen: set[int] = set()
        self._ids = np.zeros(0, dtype=np.intp)
        self.extend(history)

    def extend(self, tokens: Sequence[int]) -> None:
        fresh = [t for t in dict.fromkeys(int(t) for t in tokens) if t not in self._seen]
        if fresh:
            self._seen.update(fresh)
            self._ids = self._np.concatenate([self._ids, self._np.array(fresh, dtype=self._np.intp)])

    def apply(self, logits: Any) -> None:
        """``logits``: the row as a float32 numpy array (a view of llama.cpp's buffer)."""
        if len(self._ids):
            picked = logits[self._ids]
            logits[self._ids] = self._np.where(picked < 0, picked * self._penalty, picked / self._penalty)


class NativeSampler:
    """One passage's llama.cpp sampler chain, with the repetition penalty applied before it. ``close()`` frees it."""

    def __init__(self, lib: Any, n_vocab: int, settings: SamplerSettings, seed: int | None, *,
                 banned_ids: Sequence[int] = (), penalty_history: Sequence[int] | None = None):
        """``penalty_history``: the tokens already subject to the repetition penalty (None: no penalty here; the
        new tokens are added as they are drawn)."""
        import numpy as np

        self._lib, self._np = lib, np
        self._n_vocab = n_vocab
        self._rows: dict[int | None, Any] = {}  # logits buffer address → its numpy view
        params = lib.llama_sampler_chain_default_params()
        params.no_perf = True
        self._chain = lib.llama_sampler_chain_init(params)
        penalty = float(settings.repetition_penalty)
        self._penalty = (RepetitionPenalty(penalty, penalty_history)
                         if penalty_history is not None and penalty != 1.0 else None)
        banned = sorted({int(i) for i in banned_ids if 0 <= int(i) < n_vocab})
        self._greedy = not settings.do_sample
        top_k = int(settings.top_k or 0)
        self._top_k = TopKCandidates(lib, n_vocab, top_k) \
            if settings.do_sample and TopKCandidates.applies(n_vocab, top_k) else None
        # numpy writes the -inf bias into the row on the paths that do not hand llama.cpp the whole row
        self._banned = np.array(banned, dtype=np.intp) if self._greedy or self._top_k else None
        if banned and self._banned is None:
            biases = (lib.llama_logit_bias * len(banned))()
            for slot, token in zip(biases, banned):
                slot.token, slot.bias = token, float("-inf")
            self._add(lib.llama_sampler_init_logit_bias(n_vocab, len(banned), biases))
        if not settings.do_sample:
            self._add(lib.llama_sampler_init_greedy())
            return
        if settings.top_k:
            self._add(lib.llama_sampler_init_top_k(int(settings.top_k)))
        if settings.temperature != 1.0:
            self._add(lib.llama_sampler_init_temp(float(settings.temperature)))
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
        """The next token from the last decoded position's logits (added to the penalty's history)."""
        lib = self._lib
        if self._penalty is None and self._banned is None:
            return int(lib.llama_sampler_sample(self._chain, ctx, -1))
        token = self.sample_row(self._row(lib.llama_get_logits_ith(ctx, -1)))
        if token is None:
            token = int(lib.llama_sampler_sample(self._chain, ctx, -1))
        if self._penalty is not None:
            self._penalty.extend((token,))
        return token

    def resample_without(self, ctx: Any, token_ids: Sequence[int]) -> int:
        """Draw again at the same position with ``token_ids`` left out (the row already holds the penalty)."""
        lib = self._lib
        row = self._row(lib.llama_get_logits_ith(ctx, -1))
        row[[int(i) for i in token_ids]] = -self._np.inf
        if self._greedy:
            token = int(self._np.argmax(row))
        else:
            drawn = self._top_k.sample(self._chain, row) if self._top_k is not None else None
            token = int(lib.llama_sampler_sample(self._chain, ctx, -1)) if drawn is None else drawn
        if self._penalty is not None:
            self._penalty.extend((token,))
        return token

    def _row(self, pointer: Any) -> Any:
        """llama.cpp's logits row as a numpy view, made once per buffer address (``np.ctypeslib.as_array`` cost
        0.06-0.08 ms a token right after a decode; the buffer stays where it is from token to token)."""
        address = ctypes.cast(pointer, ctypes.c_void_p).value
        row = self._rows.get(address)
        if row is None:
            row = self._rows[address] = self._np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))
        return row

    def sample_row(self, row: Any) -> int | None:
        """The penalty and bias applied to ``row`` (llama.cpp's logits, changed in place), and the token drawn from
        it by numpy's greedy argmax or the top-k candidates; None: draw from the whole row with llama.cpp's chain."""
        if self._penalty is not None:
            self._penalty.apply(row)
        if self._banned is not None and len(self._banned):
            row[self._banned] = -self._np.inf
        if self._greedy:
            return int(self._np.argmax(row))
        return self._top_k.sample(self._chain, row) if self._top_k is not None else None

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


def split_passage_hooks(processors: Sequence[Any]) -> tuple[list[Any], list[Any], Any | None, Any | None]:
    """The engine's passage hooks as (first-token masks, other hooks, the repetition penalty processor or None, the
    end-at-a-sentence-end rule or None: the loop asks it only when an end token was drawn)."""
    from transformers import RepetitionPenaltyLogitsProcessor

    first, others, penalty, end_rule = [], [], None, None
    for processor in processors:
        if isinstance(processor, FirstTokenMask):
            first.append(processor)
        elif isinstance(processor, RepetitionPenaltyLogitsProcessor):
            penalty = processor
        elif isinstance(processor, EndAtSentenceEnd):
            end_rule = processor
        else:
            others.append(processor)
    return first, others, penalty, end_rule
