"""The co-writing loop without Textual: the model, generate, stream, accept, regenerate, extend, alternatives, undo.

One explicit state (:class:`LoopState`) says what the writer can do now:

* ``LOADING``   no model yet: a generate waits and starts as soon as the model is ready
* ``IDLE``      nothing streams and nothing is pending (a model is ready, or the load failed)
* ``STREAMING`` a passage streams in: the story is read-only; accept means "stop and keep what came"
* ``PENDING``   a passage is shown after the story: accept it, browse its alternatives, dismiss or type over it

The story and its alternatives live in the ``Draft``, which also says where a regenerate starts and which
alternative shows; the controller adds only the run in flight and the model. The screen is a :class:`LoopView`
(the app; the unit tests use a recording fake). The view consumes a stream in the background and hands the pieces
and the end back through :meth:`StoryController.piece` and :meth:`StoryController.finished` on the UI thread.
torch is imported only when a request is built, never at import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from storyterm.engine.errors import StorytermError
from storyterm.engine.genres import WordGenres
from storyterm.engine.prompt import opening_text, title_prompt
from storyterm.tui.text_form import editor_form

if TYPE_CHECKING:
    from storyterm.engine.generation import (
        GenerationRequest,
        GenerationResult,
        GenerationStats,
        GenerationStream,
        StoryEngine,
    )
    from storyterm.engine.loading import LoadedModel, ModelSpec
    from storyterm.story.draft import Draft


class LoopState(str, Enum):
    LOADING = "loading"
    IDLE = "idle"
    STREAMING = "streaming"
    PENDING = "pending"


@dataclass(frozen=True)
class Choices:
    """What the writer chose outside the draft (picker, panel, config), read when a run starts."""

    genre: str | None = None
    title: str = ""
    starter: str | None = None        # the starter highlighted in the picker: opens an empty story
    instruct: bool = False
    word_genres: WordGenres = field(default_factory=WordGenres)
    settings_error: str | None = None  # the first invalid field in words: no run while it is set


class LoopView(Protocol):
    """What the controller asks of the screen."""

    def notify(self, message: str, *, title: str = "", severity: str = "information",
               timeout: float | None = None) -> None: ...
    def choices(self) -> Choices: ...
    def show_draft(self) -> None: ...                  # the editor shows draft.text and the pending passage
    def run_started(self, story: str) -> None: ...     # the editor shows ``story`` alone, read-only
    def consume(self, stream: GenerationStream, request: GenerationRequest) -> None: ...  # in the background
    def add_piece(self, text: str) -> None: ...        # a streamed piece joins the shown passage
    def run_ended(self) -> None: ...                   # the editor is writable again
    def passage_accepted(self) -> None: ...            # the pending text is story text now (same characters)
    def story_changed(self) -> None: ...               # save, status, context usage
    def status_changed(self) -> None: ...
    def model_ready(self, loaded: LoadedModel) -> None: ...  # genres, panels and settings follow the model
    def bell(self) -> None: ...
    # Token probabilities and swaps (tui/token_view.py): what every run asks for, the stream to open (a swap's
    # when one was asked for), and a swap's result (True: recorded there).
    def with_token_probs(self, request: GenerationRequest) -> GenerationRequest: ...
    def open_stream(self, request: GenerationRequest) -> GenerationStream: ...
    def record_swap(self, request: GenerationRequest, result: GenerationResult, model: str) -> bool: ...


@dataclass
class _Run:
    request: GenerationRequest
    stream: GenerationStream
    story_before: str            # the story when the run started: a changed story discards the passage
    stopping: bool = False
    accept_when_stopped: bool = False


class StoryController:
    def __init__(self, view: LoopView, draft: Callable[[], Draft], spec: ModelSpec) -> None:
        self.view = view
        self._draft = draft            # the open draft changes (open, new, recover): always ask
        self.spec = spec
        self.loaded: LoadedModel | None = None
        self.engine: StoryEngine | None = None
        self.load_failed: str | None = None  # why the model is missing (only while there is none)
        self.model_loading = False     # a load (the first, or a switch) is under way
        self.load_state = "loading…"   # what the status says about the model while a load runs
        self.last_stats: GenerationStats | None = None
        self.context: tuple[int, int] | None = None  # (prompt tokens, window) of the next request
        self._run: _Run | None = None
        self._generate_when_loaded = False

    @property
    def draft(self) -> Draft:
        return self._draft()

    @property
    def state(self) -> LoopState:
        if self._run is not None:
            return LoopState.STREAMING
        if self.draft.pending is not None:
            return LoopState.PENDING
        if self.engine is None and self.load_failed is None:
            return LoopState.LOADING
        return LoopState.IDLE

    @property
    def generating(self) -> bool:
        return self._run is not None

    @property
    def activity(self) -> str:
        """The status bar's word for what is going on."""
        if self._run is not None:
            return "stopping…" if self._run.stopping else "generating…"
        if self.loaded is None:
            return "load failed" if self.load_failed else self.load_state
        return self.load_state if self.model_loading else "ready"

    # -- the model ----------------------------------------------------------------------------------------------

    def load_started(self, status: str) -> None:
        self.model_loading = True
        self.load_state = status
        self.view.status_changed()

    def load_progress(self, status: str) -> None:
        if self.model_loading:  # a switch's progress as much as the first load's
            self.load_state = status
            self.view.status_changed()

    def load_finished(self, spec: ModelSpec, loaded: LoadedModel, engine: StoryEngine) -> None:
        self.model_loading = False
        self.spec, self.loaded, self.engine, self.load_failed = spec, loaded, engine, None
        self.context = None
        self.draft.model_id = loaded.name
        self.view.model_ready(loaded)
        if self._generate_when_loaded:
            self._generate_when_loaded = False
            self.generate()

    def load_refused(self, message: str) -> None:
        """The load failed: the previous model (if any) stays."""
        self.model_loading = False
        self._generate_when_loaded = False
        if self.engine is None:
            self.load_failed = message
        self.view.notify(message, title="Model not loaded", severity="error", timeout=10)
        if self.engine is not None:
            self.view.notify(f"Still using {self.loaded.name if self.loaded else 'the previous model'}.", timeout=4)
        self.view.status_changed()

    def may_switch_model(self) -> bool:
        if self._run is not None:
            self.view.notify("Stop the generation first (escape).", severity="warning")
            return False
        return True

    # -- generating ---------------------------------------------------------------------------------------------

    def generate(self) -> bool:
        """A new passage at the end of the story; True when a run started."""
        if self._run is not None:
            return False  # a second ctrl+g while one runs is ignored on purpose
        choices = self.view.choices()
        if self._refused_for_settings(choices):
            return False
        if self.engine is None:
            if self.load_failed:
                self.view.notify(f"No model: {self.load_failed}. Press F2 to choose one.", severity="error")
                return False
            self._generate_when_loaded = True
            self.load_state = "waiting for model…"
            self.view.status_changed()
            self.view.notify("The model is still loading; generation starts as soon as it is ready.", timeout=3)
            return False
        if not self.draft.text.strip():
            opening = self._opening(choices)
            if opening:
                self.draft.set_text(opening, coalesce=False)
                self.draft.break_undo_group()
        return self._start(choices)

    def regenerate(self) -> bool:
        """Another alternative at the same spot; earlier ones stay in the draft as siblings. With a pending passage
        that spot is the end of the story; with none, the Draft's ``regenerate_start`` (the passage accepted last,
        still at the end): the new alternative streams in its place and f7 brings the old one back."""
        if self._run is not None:
            return False
        choices = self.view.choices()
        if self._refused_for_settings(choices):
            return False
        start = self.draft.regenerate_start
        if start is None or self.engine is None:
            if self.draft.pending is None and self.draft.last_accepted is not None and self.engine is not None:
                # Say what happens instead of quietly doing something else.
                self.view.notify("The story was edited after the last passage, so there is nothing to regenerate "
                                 "at its end: generating a new passage.", timeout=5)
            return self.generate()
        return self._start(choices, story=self.draft.text[:start])

    def extend(self) -> bool:
        """Accept the pending passage (if any) and generate the next one."""
        if self._run is not None or self._refused_for_settings(self.view.choices()):
            return False
        if self.draft.pending is not None:
            self.accept()
        return self.generate()

    def request(self, choices: Choices, story: str | None = None) -> GenerationRequest:
        from storyterm.engine.generation import GenerationRequest

        return GenerationRequest(
            genre=choices.genre,
            story=self.draft.text if story is None else story,
            memory=self.draft.memory,
            settings=self.draft.settings,
            word_genres=choices.word_genres,
            instruct=choices.instruct,
            title=choices.title,
            **self.draft.context.request_fields(),  # author's note, banned words, stops, lorebook
        )

    def _refused_for_settings(self, choices: Choices) -> bool:
        """A field showing an invalid value must not be silently replaced by the last valid one."""
        if choices.settings_error is None:
            return False
        self.view.notify(f"{choices.settings_error} (Sampling panel).", title="Not generated", severity="error")
        return True

    @staticmethod
    def _opening(choices: Choices) -> str:
        """When the story is empty: the starter highlighted in the picker, else the title prompt."""
        if choices.starter:
            return opening_text(choices.starter)
        if choices.title and not choices.instruct:  # a chat model is told the title in its request instead
            return opening_text(title_prompt(choices.title, choices.genre))
        return ""

    def start(self, story: str | None = None) -> bool:
        """A run from ``story`` without generate's checks (a token swap starts this way); refused while one runs."""
        if self._run is not None or self.engine is None:
            return False
        return self._start(self.view.choices(), story)

    def _start(self, choices: Choices, story: str | None = None) -> bool:
        """``story``: continue from this text instead of the whole story (regenerating the last accepted passage:
        the Draft changes only when the new alternative arrives, so a failed run leaves it as it was)."""
        assert self.engine is not None
        request = self.view.with_token_probs(self.request(choices))
        if story is not None:
            request = replace(request, story=story)
        try:
            stream = self.view.open_stream(request)
        except StorytermError as error:
            self.view.notify(str(error), title="Cannot generate", severity="error")
            return False
        self._run = _Run(request, stream, story_before=self.draft.text)
        self.view.run_started(request.story)  # a regenerate replaces the shown alternative while it streams
        self.view.status_changed()
        self.view.consume(stream, request)
        return True

    def piece(self, text: str) -> None:
        if self._run is not None:
            self.view.add_piece(text)

    def finished(self, request: GenerationRequest, result: GenerationResult | None, error: str | None) -> None:
        run, self._run = self._run, None
        self.view.run_ended()
        if error is not None or result is None:
            self.view.notify(error or "generation failed", title="Generation failed", severity="error")
        elif run is not None and self.draft.text != run.story_before:
            # The story changed under the run (cannot happen while the editor is read-only; be safe anyway).
            self.view.notify("The story changed during generation; the passage was discarded.", severity="warning")
        else:
            self.record_result(request, result)
            self.last_stats = result.stats
            if result.stats.context_trimmed:
                self.view.notify("The story is longer than the model's context: its start was left out.",
                                 timeout=4)
        self.view.show_draft()
        self.view.status_changed()
        if run is not None and run.accept_when_stopped and self.draft.pending is not None:
            self.accept()
        self.view.story_changed()

    def record_result(self, request: GenerationRequest, result: GenerationResult) -> None:
        """The run's alternatives join the draft; the streamed one (``texts[0]``) is the one shown."""
        model = self.loaded.name if self.loaded else self.spec.source
        # Line breaks as the editor shows them, so the story in the Draft and on screen stay equal.
        texts = [editor_form(t) for t in (result.texts[:1] if result.cancelled else result.texts)]
        texts = [t for t in texts if t]
        if not texts:
            if not result.cancelled:  # stopped before the first word: nothing to say
                self.view.notify("The model produced no text; try again or change the settings.",
                                 severity="warning")
            return
        if self.view.record_swap(request, result, model):
            return
        draft = self.draft
        if request.story != draft.text:
            # Regenerating the accepted passage: the story goes back to where that passage began.
            draft.set_text(request.story, coalesce=False)
        tokens = dict(zip(result.texts, result.tokens))  # each text's token probabilities, when measured
        added = [
            draft.add_alternative(text, genre=request.genre, settings=request.settings, seed=result.seed,
                                  model=model, stopped=result.cancelled, tokens=tokens.get(text))
            for text in texts
        ]
        ids = [p.id for p in draft.alternatives()]
        if added[0].id in ids and draft.pending is not None and draft.pending.id != added[0].id:
            draft.select_alternative(ids.index(added[0].id), coalesce=False)  # not the writer browsing

    def cancel(self) -> None:
        """Quit, a signal, the app closing: never leave a generation thread running."""
        if self._run is not None:
            self._run.stream.cancel()

    # -- the pending passage and its alternatives -----------------------------------------------------------------

    def stop(self) -> bool:
        """Stop the run (what streamed so far stays pending), else dismiss the pending passage."""
        if self._run is not None:
            self._run.stream.cancel()
            self._run.stopping = True
            self.view.status_changed()
            return True
        if self.draft.pending is None:
            return False
        self.draft.dismiss()
        self.view.show_draft()
        self.view.story_changed()
        return True

    def accept(self) -> bool:
        if self._run is not None:
            # Keep what streamed so far and accept it as soon as the run has stopped.
            self._run.accept_when_stopped = True
            return self.stop()
        if self.draft.pending is None:
            return False
        self.draft.accept()
        self.view.passage_accepted()
        self.view.story_changed()
        return True

    def cycle(self, step: int) -> bool:
        if self._run is not None:
            return False
        alternatives = self.draft.alternatives()
        if not alternatives:
            self.view.notify("No alternatives here yet: ctrl+r generates one.", timeout=3)
            return False
        index = self.draft.alternative_index
        self.draft.select_alternative((index if index is not None else -step) + step)
        self.view.show_draft()
        self.view.story_changed()
        return True

    def undo(self) -> bool:
        return self._history(self.draft.undo)

    def redo(self) -> bool:
        return self._history(self.draft.redo)

    def _history(self, step: Callable[[], bool]) -> bool:
        if self._run is not None:
            return False  # the story is read-only while a passage streams
        moved = step()
        if not moved:
            self.view.bell()
        self.view.show_draft()
        self.view.story_changed()
        return moved

    # -- context ------------------------------------------------------------------------------------------------

    def measure_context(self, choices: Choices) -> None:
        """How much of the model's window the next request fills (for the status bar)."""
        if self.engine is None:
            return
        try:
            self.context = self.engine.context_usage(self.request(choices))
        except StorytermError:
            return
