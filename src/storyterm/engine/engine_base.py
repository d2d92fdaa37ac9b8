"""What every engine backend shares: the request, the stream a consumer iterates, one run at a time, validation,
the prompt (``prompt_builder.py``), the spacing and end rules (``passage.py``) and the result.

``StoryEngine`` (``generation.py``, transformers) and ``LlamaCppEngine`` (``llama_cpp_backend.py``, GGUF files) build
on ``EngineBase``: each only says how its model turns a prompt into tokens. A consumer iterates a GenerationStream
for the text of alternative 0 as it is decoded; ``cancel()`` is checked after every decoding step; an exception
raised in the generating thread is re-raised to the consumer.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from transformers import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor, StoppingCriteria,
                          TextIteratorStreamer)

from .authors_note import DEFAULT_NOTE_DEPTH, validate_note
from .errors import EngineBusyError, SettingsError, UnknownGenreError
from .genres import DEFAULT_WORD_GENRE_SETTINGS, WordGenres
from .instruct import eos_token_ids, has_chat_template
from .lorebook import Lorebook
from .passage import (DECODE_KWARGS, HEALED, MID_WORD, START, SentenceStop, TokenSurfaces, after_healed,
                      decode_continuation, finish_passage, grace_tokens, plan_start, unfinished_word, without_healed)
from .prompt import BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, genre_token
from .prompt_builder import STORY, PreparedPrompt, PromptBuilder
from .settings import DEFAULT_SETTINGS, SamplerSettings
from .steering import STOP_SEQUENCE, BannedWords, StopScanner, StopSequenceCriterion, cut_at_stop, validate_steering
from .token_probs import TokenInfo, validate_token_probs
from .checkpoint_word_guard import CheckpointWordGuard

if TYPE_CHECKING:
    import torch

    from .loading import LoadedModel

_DECODE_KWARGS = DECODE_KWARGS


@dataclass(frozen=True)
class GenerationRequest:
    genre: str | None  # one of loaded.genres, else of word_genres.genres (a model without genre tokens); None: free
    story: str = ""  # the whole story so far; the continuation is appended to it verbatim
    memory: str = ""  # kept in context right after the header
    settings: SamplerSettings = DEFAULT_SETTINGS
    # Genres in words for models without genre tokens: the writer's list and header template (engine/genres.py)
    word_genres: WordGenres = DEFAULT_WORD_GENRE_SETTINGS
    instruct: bool | None = None  # ask a chat model to continue (engine/instruct.py); None: on if it has a template
    title: str = ""  # told to the model in instruct mode
    banned_words: tuple[str, ...] = ()  # never generated, in any spelling (engine/steering.py)
    stop_sequences: tuple[str, ...] = ()  # the passage ends where one is written; it is not part of the text
    authors_note: str = ""  # put authors_note_depth sentences before the story's end (engine/authors_note.py)
    authors_note_depth: int = DEFAULT_NOTE_DEPTH
    token_probs: int = 0  # report each token's probabilities and this many top candidates (engine/token_probs.py)
    lorebook: Lorebook = Lorebook()  # world info entries the story's last lines call for (engine/lorebook.py)
    # Token healing of a last word for models without a word list (passage.HEALED); a token swap's continuation is
    # not healed: the writer chose that token.
    heal: bool = True


@dataclass(frozen=True)
class GenerationStats:
    prompt_tokens: int
    new_tokens: int
    time_to_first_token_s: float | None
    tokens_per_second: float
    elapsed_s: float
    context_trimmed: bool
    context_window: int
    cached_prompt_tokens: int = 0  # prompt tokens whose keys and values came from the previous passage
    stop_sequence: str | None = None  # the stop sequence that ended alternative 0 (cut from its text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens,
            "time_to_first_token_s": self.time_to_first_token_s,
            "tokens_per_second": self.tokens_per_second,
            "elapsed_s": self.elapsed_s,
            "context_trimmed": self.context_trimmed,
            "context_window": self.context_window,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "stop_sequence": self.stop_sequence,
        }


@dataclass(frozen=True)
class GenerationResult:
    texts: list[str]  # num_alternatives continuations; texts[0] is the one that streamed
    stats: GenerationStats
    cancelled: bool
    seed: int | None = None  # the seed actually used (drawn at random when the settings had none); None when greedy
    endings: tuple[str, ...] = ()  # per text, why it ends there: passage.END_OF_TEXT, SENTENCE, TRIMMED, WORD…
    # per text, its tokens with probabilities (request.token_probs > 0); None where they could not be aligned
    tokens: tuple[tuple[TokenInfo, ...] | None, ...] = ()

    @property
    def text(self) -> str:
        return self.texts[0]

    @property
    def trimmed(self) -> bool:
        """The streamed passage lost an unfinished tail (or half a word) at its end."""
        return bool(self.endings) and self.endings[0] in ("trimmed", "word")


class _CancelCriterion(StoppingCriteria):
    """Ends every sequence at the next step once the consumer asked to stop."""

    def __init__(self, cancelled: threading.Event):
        self.cancelled = cancelled

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        import torch

        return torch.full((input_ids.shape[0],), self.cancelled.is_set(), dtype=torch.bool, device=input_ids.device)


class _FirstRowStreamer(TextIteratorStreamer):
    """TextIteratorStreamer for batch 1 only; with N alternatives this forwards row 0 (the one shown live)."""

    def __init__(self, tokenizer: Any, anchor: list[int] | None = None):
        super().__init__(tokenizer, skip_prompt=True, **_DECODE_KWARGS)
        self.first_token_at: float | None = None
        # Decoding starts from the prompt's last token so a SentencePiece decoder keeps the first token's space.
        self.token_cache = list(anchor or [])
        self.print_len = len(tokenizer.decode(self.token_cache, **_DECODE_KWARGS)) if anchor else 0
        self._prompt_seen = False
        self._ended = False
        self._lock = threading.Lock()

    def put(self, value: torch.Tensor) -> None:
        value = value[:1]  # (N, L) prompt → (1, L); (N,) step tokens → (1,)
        if self._prompt_seen and self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self._prompt_seen = True
        super().put(value)

    def end(self) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
        super().end()

    def close(self) -> None:
        """Unblock the consumer even if generate() died before calling end()."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        self.text_queue.put(self.stop_signal)


class GenerationStream:
    """A generation running in a thread. Iterate it for the live text of alternative 0, then call ``result()``."""

    def __init__(self, run: _Run):
        self._run = run
        self._consumed = False

    def __iter__(self) -> Iterator[str]:
        if self._consumed:
            raise RuntimeError("a GenerationStream can be iterated only once")
        self._consumed = True
        run = self._run
        strip_leading = run.strip_leading
        lead = run.lead
        for piece in StopScanner(run.stops).filter(after_healed(run.streamer, run.healed)):
            if strip_leading:
                piece = piece.lstrip()
                strip_leading = not piece
            if piece and lead:
                piece = _with_lead(piece, lead)
                lead = ""
            if piece:
                yield piece
        run.wait()
        if run.error is not None:
            raise run.error

    def cancel(self) -> None:
        """Thread-safe; generation stops after the current decoding step."""
        self._run.cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._run.cancelled.is_set()

    @property
    def done(self) -> bool:
        return self._run.finished.is_set() and not self._run.thread_alive()

    def result(self, timeout: float | None = None) -> GenerationResult:
        """Wait for the end; re-raises the thread's exception. TimeoutError if it is still running after timeout."""
        if not self._run.wait(timeout):
            raise TimeoutError("the generation is still running")
        if self._run.error is not None:
            raise self._run.error
        assert self._run.result is not None
        return self._run.result


@dataclass
class _Run:
    streamer: _FirstRowStreamer
    strip_leading: bool
    lead: str = ""  # put before the passage unless it starts with whitespace (an instruct reply after a word)
    settings: SamplerSettings = DEFAULT_SETTINGS
    anchor: list[int] = field(default_factory=list)  # the prompt's last token: new text is decoded after it
    logits_processor: LogitsProcessorList = field(default_factory=LogitsProcessorList)
    sentence_stop: SentenceStop | None = None
    stops: tuple[str, ...] = ()  # stop sequences: the streamed and final texts end before the first one
    banned: tuple[str, ...] = ()  # banned words
    token_probs: int = 0  # top candidates per token to report (0: no probabilities)
    healed: str = ""  # the story's last token's text, written again at the passage's start (passage.HEALED)
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    result: GenerationResult | None = None
    thread: threading.Thread | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (joined, so nothing of it is left when the interpreter exits)."""
        if not self.finished.wait(timeout):
            return False
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)
        return not self.thread_alive()

    def thread_alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


def _with_lead(text: str, lead: str) -> str:
    return text if not text or not lead or text[0].isspace() else lead + text


def suppressed_token_ids(tokenizer: Any, genres: list[str] | tuple[str, ...]) -> list[int]:
    """Genre, BOS and PAD ids, never to be sampled (a small model would otherwise switch genre mid-story).

    Shared with ``training/``, which writes them into a checkpoint's generation_config.json."""
    vocab = tokenizer.get_vocab()
    eos_id = vocab.get(EOS_TOKEN, tokenizer.eos_token_id)
    never = [vocab.get(genre_token(genre)) for genre in genres]
    never += [vocab.get(BOS_TOKEN, tokenizer.bos_token_id), vocab.get(PAD_TOKEN, tokenizer.pad_token_id)]
    return sorted({int(i) for i in never if i is not None and i != eos_id})


def _unfinished_word_rule_for(known: tuple[frozenset[str], list[str]], memory: str) -> Callable[[str, str], bool]:
    """``plan_start``'s test of the story's last word with ``known`` (the words, the same sorted): unfinished when
    it is no word of the list, the story before it or Memory, but begins one (``passage.unfinished_word``)."""
    return lambda word, before: unfinished_word(word, f"{before}\n{memory}", *known)


class EngineBase:
    """What every backend shares: validating a request, building its prompt (``prompt_builder.py``), where the
    passage starts and ends, one generation at a time. A backend runs the model in ``stream()``: StoryEngine below
    (transformers), ``llama_cpp_backend.LlamaCppEngine`` (GGUF files)."""

    def __init__(self, loaded: LoadedModel, *, smart_context: bool = True):
        self.loaded = loaded
        self._builder = PromptBuilder(loaded, smart_context=smart_context)
        self._lock = threading.Lock()
        tokenizer = loaded.tokenizer
        vocab = tokenizer.get_vocab()
        # Every end id the checkpoint lists (instruct models end a turn with several): never reduced to one.
        self._eos_ids = eos_token_ids(tokenizer, getattr(loaded.model, "generation_config", None), vocab.get(EOS_TOKEN))
        self._eos_id = self._eos_ids[0] if self._eos_ids else None
        pad_id = vocab.get(PAD_TOKEN, tokenizer.pad_token_id)
        self._pad_id = pad_id if pad_id is not None else self._eos_id
        self._suppressed = [i for i in suppressed_token_ids(tokenizer, loaded.genres) if i not in self._eos_ids]
        self._token_surfaces: TokenSurfaces | None = None  # built on the first generation (one batch decode)
        self._word_guard = CheckpointWordGuard(tokenizer, loaded.known_words)
        self._banned_words = BannedWords(tokenizer)

    @property
    def word_guard_available(self) -> bool:
        """True when the model has a word list (``LoadedModel.known_words``), so ``SamplerSettings.word_guard`` has an
        effect."""
        return self._word_guard.available

    def forget_context(self) -> None:
        """Drop the remembered window start and the previous passage's KV cache (the next passage reads afresh)."""
        self._builder.reset()

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @property
    def suppressed_token_ids(self) -> list[int]:
        """Genre, BOS and PAD ids: never sampled (a small model would otherwise switch genre mid-story)."""
        return list(self._suppressed)

    # -- preparing the prompt -----------------------------------------------------------------------------------------

    def validate(self, request: GenerationRequest) -> None:
        """SettingsError / UnknownGenreError with a one-line message."""
        request.settings.validate(self.loaded.context_window)
        validate_steering(request.banned_words, request.stop_sequences)
        validate_note(request.authors_note, request.authors_note_depth)
        validate_token_probs(request.token_probs)
        if not isinstance(request.lorebook, Lorebook):
            raise SettingsError(f"the lorebook must be a Lorebook, got {type(request.lorebook).__name__}")
        request.lorebook.validate()
        genres = self.loaded.genres
        if genres:
            if request.genre is None:
                raise UnknownGenreError(f"choose a genre: {', '.join(genres)}")
            if request.genre not in genres:
                raise UnknownGenreError(f"unknown genre {request.genre!r}; this model knows: {', '.join(genres)}")
        elif request.genre is not None and request.genre not in request.word_genres.genres:
            raise UnknownGenreError(
                f"unknown genre {request.genre!r}; choose one of: {', '.join(request.word_genres.genres)} "
                "(the list is in config.toml), or free mode"
            )
        if request.instruct and not has_chat_template(self.loaded.tokenizer):
            raise SettingsError(f"model {self.loaded.name} has no chat template, so it has no instruct mode")

    def instruct_on(self, request: GenerationRequest) -> bool:
        """Instruct mode: asked for, or by default whenever the model has a chat template."""
        return self._builder.instruct_on(request)

    def prompt_text(self, request: GenerationRequest) -> str:
        """The exact text the model is given for ``request`` (header, memory, chat markup, trimmed story)."""
        return self.loaded.tokenizer.decode(
            self.prepare(request).input_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def prepare(self, request: GenerationRequest) -> PreparedPrompt:
        """The prompt's token ids after trimming (``prompt_builder.py``)."""
        return self._builder.prepare(request)

    def prepare_passage(self, request: GenerationRequest) -> PreparedPrompt:
        """The prompt a passage is generated from: ``prepare``'s, less the story's last token when the passage heals
        it (``passage.HEALED``): a model without a word list, a story whose last word is half-written by English
        words and the vocabulary's (``TokenSurfaces.whole_words``, ``unfinished_word``), and other tokens that
        begin with its last token."""
        prepared = self.prepare(request)
        ids = prepared.input_ids
        if (not request.heal or self._word_guard.available or self.instruct_on(request) or len(ids) < 2
                or not prepared.parts or prepared.parts[-1].kind != STORY):
            return prepared
        surfaces = self._surfaces()
        plan = plan_start(request.story, _unfinished_word_rule_for(surfaces.whole_words(), request.memory))
        if plan.kind != MID_WORD:
            return prepared
        healed = surfaces.surfaces[ids[-1]] if 0 <= ids[-1] < surfaces.vocab_size else ""
        if (not healed.strip() or not plan.prompt_story.endswith(healed.lstrip())
                or surfaces.healing_mask(healed) is None):
            return prepared
        return replace(prepared, input_ids=ids[:-1], story_tokens=prepared.story_tokens - 1, healed=healed)

    def _surfaces(self) -> TokenSurfaces:
        if self._token_surfaces is None:
            self._token_surfaces = TokenSurfaces(self.loaded.tokenizer, self._eos_ids)
        return self._token_surfaces

    def _encode_writer_text(self, text: str) -> list[int]:
        return self._builder.encode_writer_text(text)

    def context_usage(self, request: GenerationRequest) -> tuple[int, int]:
        """(prompt tokens after trimming, context window)."""
        return len(self.prepare(request).input_ids), self.loaded.context_window

    def passage_token_limit(self, settings: SamplerSettings, prompt_tokens: int = 1) -> int:
        """max_new_tokens, plus the grace to finish a sentence when trimming is on. The grace takes only context the
        prompt leaves free (the prompt is never shortened for it)."""
        if not settings.trim_sentences:
            return settings.max_new_tokens
        room = self.loaded.context_window - prompt_tokens - settings.max_new_tokens
        return settings.max_new_tokens + max(0, min(grace_tokens(settings.max_new_tokens), room))

    # -- running ------------------------------------------------------------------------------------------------------

    def stream(self, request: GenerationRequest) -> GenerationStream:
        """Validates first (SettingsError, UnknownGenreError); EngineBusyError while another stream runs."""
        raise NotImplementedError

    def generate(self, request: GenerationRequest) -> GenerationResult:
        stream = self.stream(request)
        for _piece in stream:
            pass
        return stream.result()

    @staticmethod
    def _draw_seed(settings: SamplerSettings) -> int | None:
        """The seed to sample with (drawn at random when the settings have none); None when greedy."""
        if not settings.do_sample:
            return None
        return settings.seed if settings.seed is not None else secrets.randbelow(2**32)

    def _start(self, request: GenerationRequest, prepared: PreparedPrompt, target: Callable[..., None],
               *args: Any) -> GenerationStream:
        """Take the engine (EngineBusyError if it is taken) and run ``target(run, *args)`` in a thread, which must
        release the engine and set ``run.finished`` when it ends."""
        if not self._lock.acquire(blocking=False):
            raise EngineBusyError("a generation is already running; stop it or wait for it to finish")
        try:
            run = self._new_run(request, prepared)
            thread = threading.Thread(target=target, args=(run, *args), name="storyterm-generate", daemon=True)
            run.thread = thread
            thread.start()
        except BaseException:
            self._lock.release()
            raise
        return GenerationStream(run)

    def _new_run(self, request: GenerationRequest, prepared: PreparedPrompt) -> _Run:
        """The run's spacing rule, lead, hooks and stops (the streamer decodes after the prompt's last token)."""
        instruct = self.instruct_on(request)
        plan = plan_start(request.story, self._unfinished_word_rule(request))
        lead = " " if instruct and request.story.strip() and not request.story[-1].isspace() else ""
        anchor = prepared.input_ids[-1:]
        run = _Run(streamer=_FirstRowStreamer(self.loaded.tokenizer, anchor),
                   strip_leading=instruct or plan.drop_leading_space, lead=lead, settings=request.settings,
                   anchor=anchor)
        # An instruct reply is a new turn: it starts like a story does, whatever the story ends with.
        kind = START if instruct else HEALED if prepared.healed else plan.kind
        run.healed = prepared.healed
        run.logits_processor, run.sentence_stop = self._passage_hooks(kind, prepared, request.settings, anchor)
        run.stops, run.banned = tuple(request.stop_sequences), tuple(request.banned_words)
        run.token_probs = request.token_probs
        return run

    def _unfinished_word_rule(self, request: GenerationRequest) -> Callable[[str, str], bool] | None:
        """How ``plan_start`` tells an unfinished last word: by the model's word list (and Memory's words); None
        without a list (every word counts as finished)."""
        known = self._word_guard.known_words() if self._word_guard.available else None
        return None if known is None else _unfinished_word_rule_for(known, request.memory)

    def _passage_hooks(self, kind: str, prepared: PreparedPrompt, settings: SamplerSettings,
                       anchor: list[int]) -> tuple[LogitsProcessorList, SentenceStop | None]:
        """The spacing rule's first-token mask, the repetition penalty (story and passage only) and, with trimming
        on, the end token only after a sentence end and the criterion that ends a finished sentence."""
        surfaces, length = self._surfaces(), len(prepared.input_ids)
        mask = (surfaces.healing_first_token_mask(prepared.healed, length) if kind == HEALED
                else surfaces.first_token_mask(kind, length))
        processors = LogitsProcessorList([mask] if mask is not None else [])
        before_story = prepared.header_tokens + prepared.lorebook_tokens
        if settings.repetition_penalty != 1.0 and before_story:
            # The penalty is for the model repeating itself, not for using the names the writer put in Memory
            # or the lorebook (it cut their use by a third). This replaces generate's own penalty, in its place.
            processors.append(RepetitionPenaltyLogitsProcessor(float(settings.repetition_penalty),
                                                               prompt_ignore_length=before_story))
        stop = None
        if settings.trim_sentences:
            end_hook = surfaces.end_at_sentence_hook(length)
            if end_hook is not None:
                processors.append(end_hook)
            stop = SentenceStop(self.loaded.tokenizer, len(prepared.input_ids), settings.max_new_tokens, anchor)
        return processors, stop

    def _stop_criteria(self, run: _Run, prompt_length: int) -> list[StoppingCriteria]:
        return [StopSequenceCriterion(self.loaded.tokenizer, prompt_length, run.stops)] if run.stops else []

    def _build_result(self, run: _Run, prepared: PreparedPrompt, rows: list[list[int]], elapsed: float,
                      started: float, seed: int | None, cached_tokens: int = 0) -> GenerationResult:
        """``rows``: each alternative's new token ids as generated (an end token or padding may follow the text)."""
        tokenizer = self.loaded.tokenizer
        prompt_length = len(prepared.input_ids)
        texts, endings, stops = [], [], []
        stopped_rows = run.sentence_stop.stopped_rows if run.sentence_stop else set()
        for index, row in enumerate(rows):
            ends = [i for i, token in enumerate(row) if token in self._eos_ids]
            if ends:
                row = row[: ends[0]]
            if self._pad_id in row:  # a row that stopped early is padded while the others run on
                row = row[: row.index(self._pad_id)]
            text, stop = cut_at_stop(without_healed(decode_continuation(tokenizer, run.anchor, row), run.healed),
                                     run.stops)
            stops.append(stop)
            text = text.lstrip() if run.strip_leading else text
            text, ending = (text.rstrip(), STOP_SEQUENCE) if stop is not None else finish_passage(
                text, ended_by_model=bool(ends),
                cancelled=run.cancelled.is_set(), trim=run.settings.trim_sentences,
                finished_in_grace=index in stopped_rows,
            )
            texts.append(_with_lead(text, run.lead))
            endings.append(ending)
        first_row = rows[0]
        ends = [index for index, token in enumerate(first_row) if token in self._eos_ids]
        new_tokens = ends[0] + 1 if ends else len(first_row)
        if self._pad_id not in self._eos_ids and self._pad_id in first_row[:new_tokens]:
            new_tokens = first_row.index(self._pad_id)
        first = run.streamer.first_token_at
        stats = GenerationStats(
            prompt_tokens=prompt_length,
            new_tokens=new_tokens,
            time_to_first_token_s=None if first is None else first - started,
            tokens_per_second=new_tokens / elapsed if elapsed > 0 else 0.0,
            elapsed_s=elapsed,
            context_trimmed=prepared.context_trimmed,
            context_window=self.loaded.context_window,
            cached_prompt_tokens=cached_tokens,
            stop_sequence=stops[0],
        )
        return GenerationResult(texts=texts, stats=stats, cancelled=run.cancelled.is_set(), seed=seed,
                                endings=tuple(endings))
