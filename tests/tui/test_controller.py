"""The co-writing loop's state machine without Textual: a recording view, a fake engine, runs finished by hand."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

from storyterm.engine.errors import EngineBusyError
from storyterm.engine.generation import GenerationRequest, GenerationResult, GenerationStats
from storyterm.engine.loading import ModelSpec
from storyterm.story.draft import Draft
from storyterm.tui.controller import Choices, LoopState, StoryController


class FakeStream:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeEngine:
    def __init__(self, refuse: Exception | None = None) -> None:
        self.requests: list[GenerationRequest] = []
        self.streams: list[FakeStream] = []
        self.refuse = refuse

    def stream(self, request: GenerationRequest) -> FakeStream:
        if self.refuse is not None:
            raise self.refuse
        self.requests.append(request)
        self.streams.append(FakeStream())
        return self.streams[-1]

    def context_usage(self, request: GenerationRequest) -> tuple[int, int]:
        return len(request.story.split()), 128


@dataclass
class FakeLoaded:
    name: str = "fake"
    context_window: int = 128


@dataclass
class RecordingView:
    """The screen as the controller sees it: every call is recorded, the editor is a pair of strings."""

    draft: Draft
    choice: Choices = field(default_factory=Choices)
    notes: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    shown: tuple[str, str] = ("", "")
    read_only: bool = False
    consumed: list[tuple[FakeStream, GenerationRequest]] = field(default_factory=list)
    engine: FakeEngine | None = None  # what open_stream streams from (the app's is the controller's engine)

    def notify(self, message: str, *, title: str = "", severity: str = "information",
               timeout: float | None = None) -> None:
        self.notes.append(message)

    def choices(self) -> Choices:
        return self.choice

    def show_draft(self) -> None:
        pending = self.draft.pending
        self.shown = (self.draft.text, pending.text if pending else "")

    def run_started(self, story: str) -> None:
        self.shown, self.read_only = (story, ""), True

    def consume(self, stream, request) -> None:
        self.consumed.append((stream, request))

    def add_piece(self, text: str) -> None:
        self.shown = (self.shown[0], self.shown[1] + text)

    def run_ended(self) -> None:
        self.read_only = False

    def passage_accepted(self) -> None:
        self.shown = (self.draft.text, "")

    def story_changed(self) -> None:
        self.calls.append("story_changed")

    def status_changed(self) -> None:
        self.calls.append("status_changed")

    def model_ready(self, loaded) -> None:
        self.calls.append(f"model_ready {loaded.name}")

    def bell(self) -> None:
        self.calls.append("bell")

    def with_token_probs(self, request: GenerationRequest) -> GenerationRequest:
        return request

    def open_stream(self, request: GenerationRequest) -> FakeStream:
        return self.engine.stream(request)

    def record_swap(self, request, result, model: str) -> bool:
        return False


def result(text: str, *, cancelled: bool = False, trimmed_context: bool = False) -> GenerationResult:
    stats = GenerationStats(prompt_tokens=5, new_tokens=3, time_to_first_token_s=0.01, tokens_per_second=30.0,
                            elapsed_s=0.1, context_trimmed=trimmed_context, context_window=128)
    return GenerationResult(texts=[text], stats=stats, cancelled=cancelled, seed=1)


def make(text: str = "", *, engine: FakeEngine | None = None, loaded: bool = True):
    draft = Draft(text=text, genre="horror")
    view = RecordingView(draft, Choices(genre="horror"))
    controller = StoryController(view, lambda: draft, ModelSpec())
    view.engine = engine or FakeEngine()
    if loaded:
        controller.load_finished(ModelSpec(), FakeLoaded(), view.engine)
    return controller, view, draft


def finish(controller: StoryController, view: RecordingView, text: str, **kwargs) -> None:
    stream, request = view.consumed[-1]
    for piece in text.split(" "):
        controller.piece(piece)
    controller.finished(request, result(text, cancelled=stream.cancelled, **kwargs), None)


def test_the_loop_generate_stream_pending_accept() -> None:
    controller, view, draft = make("The house")
    assert controller.state is LoopState.IDLE and controller.activity == "ready"
    assert controller.generate()
    assert controller.state is LoopState.STREAMING and view.read_only and controller.activity == "generating…"
    assert view.consumed[-1][1].story == "The house" and view.consumed[-1][1].genre == "horror"
    finish(controller, view, " creaks.")
    assert controller.state is LoopState.PENDING and not view.read_only
    assert view.shown == ("The house", " creaks.") and draft.text == "The house"
    assert controller.last_stats is not None and controller.last_stats.tokens_per_second == 30.0
    assert controller.accept()
    assert controller.state is LoopState.IDLE
    assert draft.text == "The house creaks." and view.shown == ("The house creaks.", "")


def test_while_streaming_the_story_actions_are_refused() -> None:
    engine = FakeEngine()
    controller, view, draft = make("The house", engine=engine)
    controller.generate()
    assert not controller.generate() and not controller.regenerate() and not controller.extend()
    assert not controller.cycle(1) and not controller.undo() and not controller.redo()
    assert not controller.may_switch_model() and "Stop the generation first" in view.notes[-1]
    assert len(engine.requests) == 1 and draft.text == "The house"


def test_accept_while_streaming_stops_and_accepts_what_came() -> None:
    controller, view, draft = make("The house")
    controller.generate()
    assert controller.accept()
    stream = view.consumed[-1][0]
    assert stream.cancelled and controller.activity == "stopping…"
    assert controller.state is LoopState.STREAMING  # until the run has really stopped
    finish(controller, view, " creaks")
    assert controller.state is LoopState.IDLE and draft.text == "The house creaks"
    assert draft.passages[-1].stopped


def test_stop_dismisses_a_pending_passage_and_nothing_to_do_when_idle() -> None:
    controller, view, draft = make("The house")
    assert not controller.stop() and not controller.accept()  # IDLE: nothing to stop or accept
    controller.generate()
    finish(controller, view, " creaks.")
    assert controller.stop()
    assert controller.state is LoopState.IDLE and draft.pending is None and view.shown == ("The house", "")
    assert len(draft.passages) == 1  # dismissed, not deleted


def test_generate_while_loading_waits_for_the_model() -> None:
    controller, view, draft = make("The house", loaded=False)
    assert controller.state is LoopState.LOADING
    assert not controller.generate()
    assert controller.activity == "waiting for model…" and "still loading" in view.notes[-1]
    engine = view.engine
    controller.load_finished(ModelSpec(), FakeLoaded(), engine)
    assert controller.state is LoopState.STREAMING and len(engine.requests) == 1
    assert draft.model_id == "fake"


def test_a_failed_first_load_refuses_generation_and_says_why() -> None:
    controller, view, _draft = make("The house", loaded=False)
    controller.load_started("loading…")
    controller.load_refused("no model at /nowhere")
    assert controller.state is LoopState.IDLE and controller.activity == "load failed"
    assert not controller.generate()
    assert view.notes[-1] == "No model: no model at /nowhere. Press F2 to choose one."


def test_a_failed_switch_keeps_the_previous_model() -> None:
    engine = FakeEngine()
    controller, view, _draft = make("The house", engine=engine)
    controller.load_started("loading other…")
    assert controller.activity == "loading other…" and controller.state is LoopState.IDLE
    controller.load_progress("loading weights…")
    assert controller.activity == "loading weights…"
    controller.load_refused("could not load other")
    assert controller.engine is engine and controller.load_failed is None and controller.activity == "ready"
    assert view.notes[-1] == "Still using fake."


def test_an_invalid_field_refuses_every_kind_of_generation() -> None:
    engine = FakeEngine()
    controller, view, draft = make("The house", engine=engine)
    view.choice = Choices(genre="horror", settings_error="Top-p must be between 0 and 1")
    for action in (controller.generate, controller.regenerate, controller.extend):
        assert not action()
        assert view.notes[-1] == "Top-p must be between 0 and 1 (Sampling panel)."
    assert engine.requests == [] and controller.state is LoopState.IDLE


def test_regenerate_after_accept_streams_in_its_place_and_cycle_brings_the_first_back() -> None:
    controller, view, draft = make("The house")
    controller.generate()
    finish(controller, view, " creaks.")
    controller.accept()
    assert draft.regenerate_start == len("The house")
    assert controller.regenerate()
    assert view.consumed[-1][1].story == "The house" and view.shown == ("The house", "")
    assert draft.text == "The house creaks."  # the Draft changes only when the new take arrives
    finish(controller, view, " burns.")
    assert controller.state is LoopState.PENDING and view.shown == ("The house", " burns.")
    assert draft.alternative_count == 2
    assert controller.cycle(-1)
    assert view.shown == ("The house", " creaks.")


def test_regenerate_after_an_edit_says_it_generates_a_new_passage() -> None:
    controller, view, draft = make("The house")
    controller.generate()
    finish(controller, view, " creaks.")
    controller.accept()
    draft.set_text(draft.text + " Then")
    assert draft.regenerate_start is None
    assert controller.regenerate()
    assert "generating a new passage" in view.notes[-1]
    assert view.consumed[-1][1].story == "The house creaks. Then"


def test_extend_accepts_then_generates() -> None:
    controller, view, draft = make("The house")
    controller.generate()
    finish(controller, view, " creaks.")
    assert controller.extend()
    assert draft.text == "The house creaks." and view.consumed[-1][1].story == "The house creaks."


def test_an_engine_refusal_or_a_failed_run_leaves_the_story_as_it_was() -> None:
    controller, view, draft = make("The house", engine=FakeEngine(refuse=EngineBusyError("busy")))
    assert not controller.generate()
    assert controller.state is LoopState.IDLE and view.notes[-1] == "busy"
    controller, view, draft = make("The house")
    controller.generate()
    controller.finished(view.consumed[-1][1], None, "generation failed: out of memory")
    assert controller.state is LoopState.IDLE and not view.read_only
    assert draft.text == "The house" and draft.passages == [] and view.notes[-1].endswith("out of memory")


def test_an_empty_story_opens_with_the_highlighted_starter() -> None:
    controller, view, draft = make("")
    view.choice = Choices(genre="horror", starter="Gotham city is under attack")
    controller.generate()
    assert draft.text == "Gotham city is under attack " and view.consumed[-1][1].story == draft.text


def test_cycle_without_alternatives_and_undo_with_nothing_to_undo() -> None:
    controller, view, _draft = make("The house")
    assert not controller.cycle(1) and "No alternatives here yet" in view.notes[-1]
    assert not controller.undo() and view.calls[-2:] == ["bell", "story_changed"]


def test_alternatives_browse_and_undo_goes_back_to_before_the_run() -> None:
    controller, view, draft = make("The house")
    for text in (" creaks.", " burns."):
        controller.generate()
        finish(controller, view, text)
    assert draft.pending is not None and draft.pending.text == " burns." and draft.alternative_count == 2
    controller.cycle(1)
    assert view.shown == ("The house", " creaks.")
    while controller.undo():
        pass
    assert controller.state is LoopState.IDLE and draft.text == "The house"


def test_context_is_measured_for_the_status_bar() -> None:
    controller, view, _draft = make("The house is old")
    controller.measure_context(view.choices())
    assert controller.context == (4, 128)


def test_the_controller_imports_neither_textual_nor_torch() -> None:
    code = ("import sys, storyterm.tui.controller; "
            "print(sorted(m for m in ('textual', 'torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_start_runs_from_a_given_story_and_is_refused_while_a_run_streams() -> None:
    controller, view, _draft = make("The house creaks.")
    assert controller.start("The house")  # a token swap rewrites from here
    assert view.consumed[-1][1].story == "The house"
    assert not controller.start("The") and len(view.consumed) == 1
