"""Streaming story generation with transformers: ``model.generate`` in a background thread feeding a
TextIteratorStreamer.

One StoryEngine runs one generation at a time. ``stream()`` validates the request, builds the prompt trimmed to
the context window, and returns a GenerationStream whose iterator yields the text of alternative 0 as it is
decoded (what every backend shares is in ``engine_base.py``; this module is the transformers backend: KV caches,
smart context reuse, ``generate``'s logits processors and stopping criteria).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

from . import kv_cache
from .context import PromptCache
from .engine_base import (EngineBase, GenerationRequest, GenerationResult, GenerationStats, GenerationStream,
                          _CancelCriterion, _Run, suppressed_token_ids)
from .prompt_builder import PreparedPrompt
from .sampling import move_warpers
from .settings import SamplerSettings
from .token_probs import TokenInfo, TokenTexts, align_tokens, row_token_probs, token_spans

if TYPE_CHECKING:
    import torch

    from .loading import LoadedModel

__all__ = ["EngineBase", "GenerationRequest", "GenerationResult", "GenerationStats", "GenerationStream", "StoryEngine",
           "suppressed_token_ids"]

# From this prompt length on, a CPU generation preallocates its KV cache ("static"): the default dynamic cache copies
# itself at every step, which made a full 1024-token window ~40 % slower per token (benchmarks/bench_speed.py);
# for short prompts the dynamic cache is faster. Only for models whose layers all use full attention (kv_cache.py).
STATIC_CACHE_MIN_PROMPT_TOKENS = 512


class StoryEngine(EngineBase):
    """Runs generations for one loaded transformers model, one at a time."""

    def __init__(self, loaded: LoadedModel, *, generate_overrides: Mapping[str, Any] | None = None,
                 smart_context: bool = True):
        """``generate_overrides``: extra GenerationConfig fields (the benchmark sets ``min_new_tokens``).
        ``smart_context``: slide a long story's window in jumps and reuse the previous passage's KV cache (False:
        the window always ends with the most recent tokens, and every passage reads its prompt from scratch)."""
        super().__init__(loaded, smart_context=smart_context)
        self._generate_overrides = dict(generate_overrides or {})
        self._prompt_cache = PromptCache() if smart_context else None
        self._token_texts: TokenTexts | None = None  # candidate token texts, decoded when first asked for
        self._static_cache_ok = kv_cache.all_full_attention(loaded.model.config)

    def forget_context(self) -> None:
        super().forget_context()
        if self._prompt_cache is not None:
            self._prompt_cache.clear()

    def generation_config(self, settings: SamplerSettings, prompt_tokens: int = 1) -> GenerationConfig:
        values: dict[str, Any] = {
            "max_new_tokens": self.passage_token_limit(settings, prompt_tokens),
            "do_sample": settings.do_sample,
            "repetition_penalty": settings.repetition_penalty,
            "num_return_sequences": settings.num_alternatives,
            "eos_token_id": list(self._eos_ids) or None,
            "pad_token_id": self._pad_id,
            "suppress_tokens": self._suppressed or None,
        }
        if settings.do_sample:
            values.update(temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p)
            if settings.min_p > 0:
                values["min_p"] = settings.min_p
            if settings.typical_p < 1:
                values["typical_p"] = settings.typical_p
        values.update(self._generate_overrides)
        return GenerationConfig(**values)

    # -- running ------------------------------------------------------------------------------------------------------

    def stream(self, request: GenerationRequest) -> GenerationStream:
        self.validate(request)
        prepared = self.prepare_passage(request)
        config = self.generation_config(request.settings, len(prepared.input_ids))
        reuse_cache = (
            self._prompt_cache is not None
            and request.settings.num_alternatives == 1
            and "cache_implementation" not in self._generate_overrides
        )
        if (
            not reuse_cache
            and "cache_implementation" not in self._generate_overrides
            and self._wants_static_cache(len(prepared.input_ids))
        ):
            config.cache_implementation = "static"
        if request.token_probs:
            # The exact distributions generate samples from (scores) and the model's own (logits): token_probs.py
            config.output_scores = config.output_logits = config.return_dict_in_generate = True
        seed = self._draw_seed(request.settings)
        return self._start(request, prepared, self._generate_in_thread, prepared, config, seed, reuse_cache,
                           request.settings.word_guard)

    def _wants_static_cache(self, prompt_tokens: int) -> bool:
        return (self.loaded.device.type == "cpu" and self._static_cache_ok
                and prompt_tokens >= STATIC_CACHE_MIN_PROMPT_TOKENS)

    def _static_capacity(self, prompt_tokens: int, max_new_tokens: int) -> int:
        return kv_cache.static_capacity(prompt_tokens, max_new_tokens, self.loaded.context_window)

    def _new_cache(self, prompt_tokens: int, max_new_tokens: int) -> Any:
        static = self._wants_static_cache(prompt_tokens)
        capacity = self._static_capacity(prompt_tokens, max_new_tokens) if static else None
        return kv_cache.new_cache(self.loaded.model.config, static_capacity=capacity)

    def _cut_back(self, cache: Any, length: int, prompt_tokens: int, max_new_tokens: int) -> Any | None:
        return kv_cache.reuse(cache, length, total_tokens=prompt_tokens + max_new_tokens,
                              grow_to=self._static_capacity(prompt_tokens, max_new_tokens),
                              model_config=self.loaded.model.config)

    def _generate_in_thread(self, run: _Run, prepared: PreparedPrompt, config: GenerationConfig, seed: int | None,
                            reuse_cache: bool = False, word_guard: bool = False):
        import torch

        model = self.loaded.model
        started = time.perf_counter()
        cache_kwargs: dict[str, Any] = {}
        cached_tokens = 0
        try:
            if seed is not None:
                torch.manual_seed(seed)
            if reuse_cache:
                assert self._prompt_cache is not None
                prompt_tokens, max_new_tokens = len(prepared.input_ids), config.max_new_tokens
                cache, cached_tokens = self._prompt_cache.take(
                    prepared.input_ids,
                    lambda: self._new_cache(prompt_tokens, max_new_tokens),
                    lambda old, length: self._cut_back(old, length, prompt_tokens, max_new_tokens),
                )
                cache_kwargs["cache"] = cache
            input_ids = torch.tensor([prepared.input_ids], dtype=torch.long, device=self.loaded.device)
            config, warpers = move_warpers(config)  # top-p over top-k's survivors only (engine/sampling.py)
            with torch.inference_mode():
                sequences = model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    generation_config=config,
                    streamer=run.streamer,
                    stopping_criteria=StoppingCriteriaList(
                        [_CancelCriterion(run.cancelled), *([run.sentence_stop] if run.sentence_stop else []),
                         *self._stop_criteria(run, len(prepared.input_ids))]
                    ),
                    logits_processor=LogitsProcessorList(
                        [*run.logits_processor, *self._word_guard.processors(word_guard),
                         *self._banned_words.processors(run.banned, self._eos_ids), *warpers]
                    ),
                    **cache_kwargs,
                )
            elapsed = time.perf_counter() - started
            raw_steps = processed_steps = None
            if not isinstance(sequences, torch.Tensor):  # return_dict_in_generate: probabilities asked for
                raw_steps, processed_steps, sequences = sequences.logits, sequences.scores, sequences.sequences
            if reuse_cache:
                self._prompt_cache.keep(cache_kwargs["cache"], sequences[0].tolist())
            rows = sequences[:, len(prepared.input_ids):].tolist()
            run.result = self._build_result(run, prepared, rows, elapsed, started, seed, cached_tokens)
            if raw_steps is not None:
                run.result = replace(run.result, tokens=self._token_probs(run, prepared, sequences, raw_steps,
                                                                          processed_steps, run.result.texts))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            if self._prompt_cache is not None:
                self._prompt_cache.clear()
            run.error = error
        finally:
            run.streamer.close()
            self._lock.release()
            run.finished.set()

    def _token_probs(self, run: _Run, prepared: PreparedPrompt, sequences: torch.Tensor, raw_steps: Any,
                     processed_steps: Any, texts: list[str]) -> tuple[tuple[TokenInfo, ...] | None, ...]:
        tokenizer = self.loaded.tokenizer
        if self._token_texts is None:
            self._token_texts = TokenTexts(tokenizer)
        out = []
        for index, row in enumerate(sequences[:, len(prepared.input_ids):].tolist()):
            ends = [i for i, token in enumerate(row) if token in self._eos_ids or token == self._pad_id]
            row = row[: ends[0]] if ends else row
            measured = row_token_probs(tokenizer, run.anchor, row, raw_steps, processed_steps, index, run.token_probs)
            decoded, spans = token_spans(tokenizer, run.anchor, row)
            out.append(align_tokens(decoded, spans, texts[index], run.lead, measured, self._token_texts,
                                    run.healed))
        return tuple(out)
