"""GGUF models through llama.cpp (the ``llama-cpp-python`` bindings, ``pip install 'storyterm[gguf]'``), behind the
same engine interface as transformers models.

What is shared with StoryEngine (``generation.EngineBase``): the prompt (header or genre in words, memory,
lorebook, author's note, instruct mode through the file's chat template, smart context trimming), the spacing rule,
sentence trimming, stop sequences, banned words, cancel and alternatives. transformers' logits processors run inside
llama.cpp's sampler (``_TorchLogits``), so the first-token mask, the repetition penalty that spares Memory and the
banned words behave as on the torch engine. llama.cpp keeps the previous passage's KV cache and reuses the prompt's
common prefix by itself. Alternatives are drawn one after another (alternative 0 streams). Token probabilities
come from the logits llama.cpp hands to those processors. Not offered: the word guard (a GGUF file ships no
words.txt) and ``--dtype`` (a GGUF file carries its own weight type: ``gguf_loading.py`` refuses all but auto).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .engine_base import EngineBase, GenerationRequest, GenerationStream, _Run
from .passage import SentenceStop
from .prompt_builder import PreparedPrompt
from .settings import SamplerSettings
from .token_probs import TokenInfo, TokenTexts, align_tokens, row_token_probs, token_spans

if TYPE_CHECKING:
    from .loading import LoadedModel



def _sampling_warpers(settings: SamplerSettings) -> list[Any]:
    """transformers' warpers for ``settings``, in generate's order: what "probability under the sampler settings"
    means on the torch engine (llama.cpp samples with the same knobs, temperature last)."""
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


class _TorchLogits:
    """llama-cpp-python's ``logits_processor`` (numpy ids and logits) running transformers' LogitsProcessors, which
    expect a batch: the logits are copied (llama.cpp hands a strided view of its candidates) and given back.

    llama.cpp calls it from C, where an exception would only be printed: the first one is kept in ``error`` (the
    logits pass unchanged) and the generation loop raises it. With ``record``, every step's logits before and after
    the processors are kept in ``steps`` (the token probabilities are computed from them afterwards)."""

    def __init__(self, processors: list[Any], *, record: bool = False):
        self.processors = processors
        self.error: BaseException | None = None
        self.record = record
        self.steps: list[tuple[Any, Any]] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np
        import torch

        if self.error is not None:
            return scores
        try:
            ids = torch.from_numpy(np.asarray(input_ids, dtype=np.int64))[None]
            logits = torch.from_numpy(np.array(scores, dtype=np.float32))[None]
            raw = logits.clone() if self.record else None
            for processor in self.processors:
                logits = processor(ids, logits)
            if self.record:
                self.steps.append((raw, logits.clone()))
            return logits[0].numpy()
        except Exception as error:  # noqa: BLE001 - raised by the generation loop
            self.error = error
            return scores


class LlamaCppEngine(EngineBase):
    """Runs generations for one loaded GGUF model with llama.cpp, one at a time."""

    def __init__(self, loaded: LoadedModel, *, smart_context: bool = True):
        super().__init__(loaded, smart_context=smart_context)
        self._llama = loaded.model.llama
        self._smart_context = smart_context
        self._read_afresh = False  # forget_context(): the next passage does not reuse llama.cpp's KV cache
        self._token_texts: TokenTexts | None = None  # candidate token texts, decoded when first asked for

    def forget_context(self) -> None:
        super().forget_context()
        self._read_afresh = True

    def stream(self, request: GenerationRequest) -> GenerationStream:
        self.validate(request)
        prepared = self.prepare(request)
        seed = self._draw_seed(request.settings)
        return self._start(request, prepared, self._generate_in_thread, prepared, seed)

    def _processors(self, run: _Run, prepared: PreparedPrompt) -> _TorchLogits | None:
        from transformers import RepetitionPenaltyLogitsProcessor, SuppressTokensLogitsProcessor

        processors = list(run.logits_processor)
        penalty = float(run.settings.repetition_penalty)
        if penalty != 1.0 and not prepared.header_tokens + prepared.lorebook_tokens:
            processors.append(RepetitionPenaltyLogitsProcessor(penalty))  # the torch engine leaves it to generate
        if self._suppressed:
            processors.append(SuppressTokensLogitsProcessor(self._suppressed))
        processors += list(self._banned_words.processors(run.banned, self._eos_ids))
        return _TorchLogits(processors, record=bool(run.token_probs)) if processors or run.token_probs else None

    def _generate_in_thread(self, run: _Run, prepared: PreparedPrompt, seed: int | None) -> None:
        started = time.perf_counter()
        try:
            settings = run.settings
            processors = self._processors(run, prepared)
            limit = self.passage_token_limit(settings, len(prepared.input_ids))
            if self._read_afresh or not self._smart_context:
                self._llama.reset()
                self._read_afresh = False
            cached = self._cached_prefix(prepared.input_ids)
            rows, steps, grace_rows = [], [], set()
            for index in range(settings.num_alternatives):
                sentence_stop = None
                if settings.trim_sentences:  # it remembers its row's state: one per alternative
                    sentence_stop = SentenceStop(self.loaded.tokenizer, len(prepared.input_ids),
                                                 settings.max_new_tokens, run.anchor)
                row_seed = None if seed is None else (seed + index) % 2**32
                rows.append(self._sample_row(run, prepared, limit, processors, sentence_stop, row_seed,
                                             stream=index == 0))
                if processors is not None:
                    steps.append(processors.steps)
                    processors.steps = []
                if sentence_stop is not None and sentence_stop.stopped_rows:
                    grace_rows.add(index)
                if index == 0:
                    run.streamer.end()  # alternative 0 is shown while the others are drawn
                if run.cancelled.is_set():
                    break
            if run.sentence_stop is not None:
                run.sentence_stop.stopped_rows = grace_rows
            elapsed = time.perf_counter() - started
            run.result = self._build_result(run, prepared, rows, elapsed, started, seed, cached)
            if run.token_probs:
                run.result = replace(run.result, tokens=tuple(
                    self._row_tokens(run, row, row_steps, text)
                    for row, row_steps, text in zip(rows, steps, run.result.texts)))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            self._read_afresh = True
            run.error = error
        finally:
            run.streamer.close()
            self._lock.release()
            run.finished.set()

    def _row_tokens(self, run: _Run, row: list[int], steps: list[tuple[Any, Any]], text: str
                    ) -> tuple[TokenInfo, ...] | None:
        """One alternative's tokens with their probabilities: the model's (the logits llama.cpp handed over) and
        under the sampler settings (after the processors, with transformers' warpers in generate's order)."""
        tokenizer = self.loaded.tokenizer
        if self._token_texts is None:
            self._token_texts = TokenTexts(tokenizer)
        ends = [i for i, token in enumerate(row) if token in self._eos_ids]
        row = row[: ends[0]] if ends else row
        warpers = _sampling_warpers(run.settings)
        processed = []
        for _raw, scores in steps:
            for warper in warpers:
                scores = warper(None, scores)
            processed.append(scores)
        measured = row_token_probs(tokenizer, run.anchor, row, [raw for raw, _ in steps], processed, 0,
                                   run.token_probs)
        decoded, spans = token_spans(tokenizer, run.anchor, row)
        return align_tokens(decoded, spans, text, run.lead, measured, self._token_texts)

    def _cached_prefix(self, prompt: list[int]) -> int:
        """Prompt tokens llama.cpp will not read again: the common prefix with what its KV cache holds."""
        held = self._llama.input_ids[: self._llama.n_tokens]
        limit = min(len(held), len(prompt) - 1)
        count = 0
        while count < limit and held[count] == prompt[count]:
            count += 1
        return count

    def _sample_row(self, run: _Run, prepared: PreparedPrompt, limit: int, processors: _TorchLogits | None,
                    sentence_stop: SentenceStop | None, seed: int | None, *, stream: bool) -> list[int]:
        """One alternative's new token ids (its end token included), streamed to the live view when ``stream``."""
        import numpy as np
        import torch

        settings = run.settings
        prompt = prepared.input_ids
        if seed is not None:
            self._llama.set_seed(seed)
        sampling: dict[str, Any] = {"temp": 0.0}  # greedy
        if settings.do_sample:
            sampling = {"temp": settings.temperature, "top_k": settings.top_k, "top_p": settings.top_p,
                        "min_p": settings.min_p, "typical_p": settings.typical_p}
        criteria = [*([sentence_stop] if sentence_stop else []), *self._stop_criteria(run, len(prompt))]
        ids = torch.zeros((1, len(prompt) + limit), dtype=torch.long)  # the criteria read a growing view of it
        ids[0, : len(prompt)] = torch.tensor(prompt)
        if stream:
            run.streamer.put(np.array([prompt]))
        new: list[int] = []
        tokens = self._llama.generate(prompt, repeat_penalty=1.0, logits_processor=[processors] if processors else None,
                                      **sampling)
        try:
            for token in tokens:
                new.append(int(token))
                if stream:
                    run.streamer.put(np.array([token]))
                length = len(prompt) + len(new)
                ids[0, length - 1] = int(token)
                if (token in self._eos_ids or len(new) >= limit or run.cancelled.is_set()
                        or any(bool(c(ids[:, :length], None)[0]) for c in criteria)):
                    break
        finally:
            tokens.close()
        if processors is not None and processors.error is not None:
            raise processors.error
        return new
