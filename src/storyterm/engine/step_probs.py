"""Token probabilities computed beside a decode loop, one step at a time (the GGUF engine's, ``llama_cpp_backend``).

The loop hands each step's logits over as it samples (``StepProbs.add``) and goes on decoding; a worker thread puts
them through the Python processors that ran natively in llama.cpp, the sampler's warpers and the softmaxes while
llama.cpp computes the next token (its threads take half the CPUs: ``gguf_loading.default_threads``). So the
probabilities are ready when the passage is, instead of about a second per 100 tokens of a 50k vocabulary after it.
With probabilities off nothing here runs.

What is measured is ``token_probs.row_token_probs``'s: the chosen token's probability under the model alone and
under the sampler settings, and the model's ``k`` likeliest tokens with both.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import Any

Measured = tuple[int, float, float, list]  # (token id, prob, raw_prob, [(candidate id, prob, raw_prob)…])

_DONE = object()


class StepProbs:
    """One alternative's token probabilities, computed while it is decoded. ``add`` each step in order, ``close``
    after the last, and ``measured()`` waits for it."""

    def __init__(self, prompt: Sequence[int], processors: Sequence[Any], warpers: Sequence[Any], k: int,
                 stop_ids: Sequence[int] = ()):
        """``processors``: applied to the model's logits with the ids before each step, for the steps whose
        processed logits the loop did not record; ``warpers``: transformers' warpers for the sampler settings;
        ``stop_ids``: end tokens (nothing is measured for them: they write no text)."""
        self._ids = [int(i) for i in prompt]
        self._processors = list(processors)
        self._warpers = list(warpers)
        self._k = k
        self._stop_ids = {int(i) for i in stop_ids}
        self._steps: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._measured: list[Measured] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="storyterm-token-probs", daemon=True)
        self._thread.start()

    @property
    def computed(self) -> int:
        """How many steps are measured so far."""
        return len(self._measured)

    def add(self, raw: Any, processed: Any | None, token: int) -> None:
        """Step ``token`` was drawn: ``raw`` the model's logits (a (1, vocab) copy the loop no longer touches),
        ``processed`` the logits after every processor, or None when some ran natively (they run here)."""
        self._steps.put((raw, processed, int(token)))

    def close(self) -> None:
        """No more steps: the worker ends once it has measured those it has (also when the loop failed)."""
        self._steps.put(_DONE)

    def measured(self) -> list[Measured]:
        """Every step's measurement, in order (waits for the worker)."""
        self.close()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._measured

    def _work(self) -> None:
        while (step := self._steps.get()) is not _DONE:
            if self._error is not None:
                continue  # drain: the error is raised by measured()
            try:
                self._measure(*step)
            except BaseException as error:  # noqa: BLE001 - handed to measured()
                self._error = error

    def _measure(self, raw: Any, processed: Any | None, token: int) -> None:
        import torch

        if token in self._stop_ids:
            self._ids.append(token)
            return
        scores = processed
        if scores is None:
            ids = torch.tensor([self._ids], dtype=torch.long)
            scores = raw
            for processor in self._processors:
                scores = _suppress(processor, scores) if _is_suppress(processor) else processor(ids, scores)
        self._ids.append(token)
        columns, scores = _warped(self._warpers, scores)
        raw_p = torch.softmax(raw[0].float(), dim=-1)
        proc_p = torch.nan_to_num(torch.softmax(scores[0].float(), dim=-1), nan=0.0)  # -inf (cut) scores: 0
        if columns is not None:
            proc_p = torch.zeros_like(raw_p).index_copy_(0, columns, proc_p)
        top: list = []
        if self._k > 0:
            top_raw, top_ids = raw_p.topk(min(self._k, raw_p.shape[0]))
            top = list(zip(top_ids.tolist(), proc_p[top_ids].tolist(), top_raw.tolist()))
        self._measured.append((token, float(proc_p[token]), float(raw_p[token]), top))


def _warped(warpers: Sequence[Any], scores: Any) -> tuple[Any | None, Any]:
    """``scores`` through ``warpers``: (None, the warped row) or, once top-k has cut all but a few tokens, (their
    vocabulary ids, their warped scores): top-p, min-p and typical-p then sort 50 tokens instead of 50 000. -inf
    scores have no probability, so every warper gives the same result on the few."""
    from transformers import TopKLogitsWarper

    columns = None
    for warper in warpers:
        scores = warper(None, scores)
        if columns is None and isinstance(warper, TopKLogitsWarper):
            columns = scores[0].isfinite().nonzero().squeeze(1)
            scores = scores[:, columns]
    return columns, scores


def _is_suppress(processor: Any) -> bool:
    from transformers import SuppressTokensLogitsProcessor

    return isinstance(processor, SuppressTokensLogitsProcessor)


def _suppress(processor: Any, scores: Any) -> Any:
    """SuppressTokensLogitsProcessor's -inf on its ids, without its per-call search of the whole vocabulary."""
    width = scores.shape[-1]
    ids = processor.suppress_tokens
    return scores.index_fill(1, ids[(ids >= 0) & (ids < width)], float("-inf"))


def sampling_warpers(settings: Any) -> list[Any]:
    """transformers' warpers for ``settings`` (SamplerSettings), in generate's order: what "probability under the
    sampler settings" means on the torch engine (llama.cpp samples with the same knobs, temperature first)."""
    from transformers import (MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper,
                              TypicalLogitsWarper)

    if not settings.do_sample:
        return []
    warpers: list[Any] = []
    if settings.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(settings.temperature))
    if settings.top_k:
        warpers.append(TopKLogitsWarper(settings.top_k))
    if settings.top_p < 1.0:
        warpers.append(TopPLogitsWarper(settings.top_p))
    if settings.min_p > 0:
        warpers.append(MinPLogitsWarper(settings.min_p))
    if settings.typical_p < 1.0:
        warpers.append(TypicalLogitsWarper(settings.typical_p))
    return warpers
