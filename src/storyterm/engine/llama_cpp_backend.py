"""GGUF models through llama.cpp (the ``llama-cpp-python`` bindings, ``pip install 'storyterm[gguf]'``), behind the
same engine interface as transformers models.

What is shared with StoryEngine (``generation.EngineBase``): the prompt (header or genre in words, memory,
lorebook, author's note, instruct mode through the file's chat template, smart context trimming), the spacing rule,
sentence trimming, stop sequences, banned words, cancel and alternatives. The decode loop is storyterm's own, on
llama-cpp-python's low-level API: it reuses the KV cache's common prefix with the previous passage, decodes one
token at a time and samples with llama.cpp's native sampler chain (``llama_cpp_sampling.py``: the suppressed tokens,
top-k, temperature, top-p, min-p, typical-p, a seeded draw; before it the repetition penalty that spares Memory,
with numpy on llama.cpp's logits row); the live text is decoded by the thread that reads it, while llama.cpp
decodes the next token (``ConsumerDecodingStreamer``); the first-token
mask, banned words of several tokens and the word guard (when the model has a word list) run as transformers'
processors only on the steps where they can act, so the passage is the torch engine's. Alternatives are drawn one
after another (alternative 0 streams). Token probabilities: each step's logits are copied out and put through the
same processors in Python by a worker beside the loop (``step_probs.py``), so they are ready with the passage.
``--dtype`` does not apply (a GGUF file carries its own weight type: ``gguf_loading.py`` refuses all but auto).
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from transformers import TextIteratorStreamer

from .engine_base import EngineBase, GenerationRequest, GenerationStream, _FirstRowStreamer, _Run
from .llama_cpp_sampling import NativeSampler, StepHooks, split_banned, split_passage_hooks
from .passage import EndAtSentenceEnd, SentenceStop
from .prompt_builder import PreparedPrompt
from .step_probs import Measured, StepProbs, sampling_warpers
from .token_probs import TokenInfo, TokenTexts, align_tokens, token_spans

if TYPE_CHECKING:
    from .loading import LoadedModel


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

    def _new_run(self, request: GenerationRequest, prepared: PreparedPrompt) -> _Run:
        run = super()._new_run(request, prepared)
        run.streamer = ConsumerDecodingStreamer(self.loaded.tokenizer, run.anchor)
        return run

    def stream(self, request: GenerationRequest) -> GenerationStream:
        self.validate(request)
        prepared = self.prepare_passage(request)
        seed = self._draw_seed(request.settings)
        return self._start(request, prepared, self._generate_in_thread, prepared, seed)

    def _python_processors(self, run: _Run, prepared: PreparedPrompt, guard: list[Any]) -> list[Any]:
        """Every processor as a Python list, in the torch engine's order (the suppressed tokens before the word
        guard, which undoes its own mask when it would leave nothing): what runs at every step when the word guard
        is on, and what the token probabilities are computed with."""
        from transformers import RepetitionPenaltyLogitsProcessor, SuppressTokensLogitsProcessor

        processors = list(run.logits_processor)
        penalty = float(run.settings.repetition_penalty)
        if penalty != 1.0 and not prepared.header_tokens + prepared.lorebook_tokens:
            processors.append(RepetitionPenaltyLogitsProcessor(penalty))  # the torch engine leaves it to generate
        if self._suppressed:
            processors.append(SuppressTokensLogitsProcessor(self._suppressed))
        return processors + guard + list(self._banned_words.processors(run.banned, self._eos_ids))

    def _plan(self, run: _Run, prepared: PreparedPrompt) -> _Plan:
        """Which processors run where: natively in llama.cpp's chain, or in Python on the steps that need them."""
        guard = list(self._word_guard.processors(run.settings.word_guard))
        python = self._python_processors(run, prepared, guard)
        if guard:
            return _Plan(StepHooks(every_step=python), python, native_penalty=False, banned_ids=[], end_rule=None)
        first, others, _penalty, end_rule = split_passage_hooks(run.logits_processor)
        sequences = self._banned_words.bad_words_ids(run.banned) if run.banned else []
        single, multi = split_banned(sequences, self._eos_ids)
        hooks = StepHooks(first=first, always=others, multi_banned=multi, eos_ids=self._eos_ids)
        return _Plan(hooks, python, native_penalty=True, banned_ids=[*self._suppressed, *single], end_rule=end_rule)

    def _generate_in_thread(self, run: _Run, prepared: PreparedPrompt, seed: int | None) -> None:
        started = time.perf_counter()
        try:
            settings = run.settings
            plan = self._plan(run, prepared)
            limit = self.passage_token_limit(settings, len(prepared.input_ids))
            if self._read_afresh or not self._smart_context:
                self._llama.reset()
                self._read_afresh = False
            cached = self._cached_prefix(prepared.input_ids)
            rows, probes, grace_rows = [], [], set()
            for index in range(settings.num_alternatives):
                sentence_stop = None
                if settings.trim_sentences:  # it remembers its row's state: one per alternative
                    sentence_stop = SentenceStop(self.loaded.tokenizer, len(prepared.input_ids),
                                                 settings.max_new_tokens, run.anchor)
                row_seed = None if seed is None else (seed + index) % 2**32
                row, probe = self._sample_row(run, prepared, limit, plan, sentence_stop, row_seed,
                                              stream=index == 0)
                rows.append(row)
                probes.append(probe)
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
                    self._row_tokens(run, row, probe.measured(), text)
                    for row, probe, text in zip(rows, probes, run.result.texts)))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            self._read_afresh = True
            run.error = error
        finally:
            run.streamer.close()
            self._lock.release()
            run.finished.set()

    def _row_tokens(self, run: _Run, row: list[int], measured: list[Measured], text: str
                    ) -> tuple[TokenInfo, ...] | None:
        """One alternative's tokens with their probabilities (measured during the decode: ``step_probs.py``)."""
        tokenizer = self.loaded.tokenizer
        if self._token_texts is None:
            self._token_texts = TokenTexts(tokenizer)
        ends = [i for i, token in enumerate(row) if token in self._eos_ids]
        row = row[: ends[0]] if ends else row
        measured = measured[: len(row)]
        decoded, spans = token_spans(tokenizer, run.anchor, row)
        return align_tokens(decoded, spans, text, run.lead, measured, self._token_texts, run.healed)

    def _cached_prefix(self, prompt: list[int]) -> int:
        """Prompt tokens llama.cpp will not read again: the common prefix with what its KV cache holds."""
        held = self._llama.input_ids[: self._llama.n_tokens]
        limit = min(len(held), len(prompt) - 1)
        count = 0
        while count < limit and held[count] == prompt[count]:
            count += 1
        return count

    def _sample_row(self, run: _Run, prepared: PreparedPrompt, limit: int, plan: _Plan,
                    sentence_stop: SentenceStop | None, seed: int | None, *, stream: bool
                    ) -> tuple[list[int], StepProbs | None]:
        """One alternative's new token ids (its end token included), streamed to the live view when ``stream``,
        and with token probabilities asked for, the worker measuring them step by step."""
        import llama_cpp
        import numpy as np

        settings, llama = run.settings, self._llama
        prompt = list(prepared.input_ids)
        before_story = prepared.header_tokens + prepared.lorebook_tokens
        history = prompt[before_story:] if plan.native_penalty else None
        sampler = NativeSampler(llama_cpp, llama.n_vocab(), settings, seed, banned_ids=plan.banned_ids,
                                penalty_history=history)
        criteria = self._stop_criteria(run, len(prompt))
        # SentenceStop acts only past max_new_tokens (its grace): not called before, it costs nothing there
        grace_criteria = [sentence_stop, *criteria] if sentence_stop else criteria
        ids = TokenIds(prompt, limit)
        if stream:
            run.streamer.put(np.array([prompt]))
        record, n_vocab = bool(run.token_probs), llama.n_vocab()
        probe = StepProbs(prompt, plan.python, sampling_warpers(settings), run.token_probs, self._eos_ids) \
            if record else None
        new: list[int] = []
        step: tuple[Any, Any] = (None, None)
        try:
            self._read_prompt(prompt)
            while True:
                length = len(ids.tokens)
                active = plan.hooks.active(len(new), ids.tokens)
                if active or record:
                    step = self._run_hooks(active, ids.view(length), n_vocab, record, plan.hooks.full_python)
                token = sampler.sample(llama.ctx)
                if (token in self._eos_ids and plan.end_rule is not None and new
                        and not plan.end_rule.allows_end(ids.tokens)):
                    token = sampler.resample_without(llama.ctx, self._eos_ids)
                if probe is not None:
                    probe.add(*step, token)
                new.append(token)
                ids.tokens.append(token)
                if stream:
                    run.streamer.put(np.array([token]))
                checks = grace_criteria if len(new) >= settings.max_new_tokens else criteria
                if (token in self._eos_ids or len(new) >= limit or run.cancelled.is_set()
                        or any(bool(c(ids.view(length + 1), None)[0]) for c in checks)):
                    break
                self._decode_next(token)
        finally:
            sampler.close()
            if probe is not None:
                probe.close()
        return new, probe

    def _decode_next(self, token: int) -> None:
        """One new token through llama.cpp, as ``Llama.eval([token])`` without its per-call set-up (a KV-cache trim
        and a Python loop filling the batch: 0.3 ms a token at 124M, Python's caches being cold after a decode)."""
        llama = self._llama
        batch, position = llama._batch.batch, llama.n_tokens
        batch.n_tokens = 1
        batch.token[0], batch.pos[0], batch.n_seq_id[0], batch.seq_id[0][0] = token, position, 1, 0
        batch.logits[0] = True
        llama._ctx.decode(llama._batch)  # RuntimeError when llama.cpp refuses it
        llama.input_ids[position] = token
        llama.n_tokens = position + 1

    def _run_hooks(self, processors: list[Any], ids: Any, n_vocab: int, record: bool, processed: bool
                   ) -> tuple[Any, Any]:
        """Run ``processors`` on the last position's logits inside llama.cpp's buffer (its chain samples from
        there). With ``record``: (a copy of the model's logits, with ``processed`` the logits after the processors,
        else None) as (1, vocab) tensors."""
        import llama_cpp
        import numpy as np
        import torch

        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self._llama.ctx, -1), shape=(n_vocab,))
        raw = scores = torch.from_numpy(logits.copy())[None] if record else None
        if processors:
            scores = torch.from_numpy(logits)[None]
            for processor in processors:
                scores = processor(ids, scores)
            logits[:] = scores[0].numpy()
        return raw, (scores.clone() if record and processed else None)

    def _read_prompt(self, prompt: list[int]) -> None:
        """Decode the prompt, reusing the KV cache's common prefix (at least the last token is read again: its
        logits are the first step's)."""
        llama = self._llama
        reuse = self._cached_prefix(prompt)
        if reuse and not llama._ctx.kv_cache_seq_rm(-1, reuse, -1):
            reuse = 0  # this model's cache cannot be cut back: read it all
            llama.reset()
        llama.n_tokens = reuse
        llama.eval(prompt[reuse:])


class TokenIds:
    """A passage's prompt and new token ids: ``tokens`` as a list, and as the (1, length) tensor the processors and
    criteria read, written only up to where one of them asks (a torch write per token cost 0.08 ms at 124M)."""

    def __init__(self, prompt: list[int], limit: int):
        import torch

        self.tokens = list(prompt)
        self._tensor = torch.zeros((1, len(prompt) + limit), dtype=torch.long)
        self._tensor[0, : len(prompt)] = torch.tensor(prompt, dtype=torch.long)
        self._filled = len(prompt)

    def view(self, length: int) -> Any:
        """The first ``length`` ids as a (1, length) LongTensor (a view: later writes show in it)."""
        import torch

        if self._filled < length:
            self._tensor[0, self._filled: length] = torch.tensor(self.tokens[self._filled: length], dtype=torch.long)
            self._filled = length
        return self._tensor[:, :length]


@dataclass
class _Plan:
    hooks: StepHooks  # the Python processors and the steps they run on
    python: list[Any]  # every processor as Python, in order (token probabilities are computed with them)
    native_penalty: bool  # the repetition penalty runs in NativeSampler (numpy on llama.cpp's row), not in Python
    banned_ids: list[int]  # ids the chain never samples (suppressed, banned words of one token)
    end_rule: EndAtSentenceEnd | None  # asked when an end token is drawn (in Python at every step otherwise)


_END, _CLOSE = object(), object()


class ConsumerDecodingStreamer(_FirstRowStreamer):
    """The live text, decoded on the thread that reads it: ``put`` only queues the token ids, so the generation
    thread goes straight back to llama.cpp, and the decoding (TextIteratorStreamer decodes the text since the last
    newline again at every token: 0.15-0.25 ms a token at 124M) runs on another core while llama.cpp, which lets go
    of the GIL, decodes the next token. The text and its pieces are TextIteratorStreamer's."""

    def __init__(self, tokenizer: Any, anchor: list[int] | None = None):
        super().__init__(tokenizer, anchor)
        self._pending: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def put(self, value: Any) -> None:
        if self._prompt_seen and self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self._prompt_seen = True
        self._pending.put(value[:1])

    def end(self) -> None:
        self._finish(_END)

    def close(self) -> None:
        self._finish(_CLOSE)

    def _finish(self, marker: object) -> None:
        """Queue the first of end/close only: the reader stops at it."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        self._pending.put(marker)

    def __next__(self) -> str:
        while self.text_queue.empty():
            item = self._pending.get()
            if item is _END:
                TextIteratorStreamer.end(self)  # the rest of the text, then the stop signal
            elif item is _CLOSE:
                self.text_queue.put(self.stop_signal)
            else:
                TextIteratorStreamer.put(self, item)
        return super().__next__()
