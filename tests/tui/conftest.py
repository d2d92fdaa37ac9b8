"""TUI fixtures: the app built around the tiny checkpoint (never the built-in model), with config and drafts in
temp folders; a step gate that pauses the real model between decode steps; a scripted engine for snapshots."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from storyterm.engine.errors import EngineBusyError
from storyterm.engine.generation import GenerationRequest, GenerationResult, GenerationStats, StoryEngine
from storyterm.engine.loading import LoadedModel, ModelSpec, load_model
from storyterm.tui.app import StorytermApp

APP_SIZE = (120, 32)


@pytest.fixture(scope="session")
def tiny_loaded(tiny_checkpoint: Path) -> LoadedModel:
    """The tiny model loaded once for the whole TUI suite (loading is the slow part)."""
    return load_model(ModelSpec(source=str(tiny_checkpoint), device="cpu"))


def shared_loader(loaded: LoadedModel) -> Callable[[ModelSpec, Callable[[str], None]], LoadedModel]:
    """A loader that hands out the session's tiny model for its own path, and really loads anything else."""

    def load(spec: ModelSpec, progress: Callable[[str], None]) -> LoadedModel:
        if spec.source != loaded.spec.source:
            return load_model(spec, progress)
        progress("Loading weights…")
        return loaded

    return load


@pytest.fixture
def make_app(tiny_loaded: LoadedModel, tmp_path: Path) -> Callable[..., StorytermApp]:
    def make(*, settings_toml: str = "max_new_tokens = 12\nseed = 3\n", **kwargs) -> StorytermApp:
        """Short passages keep the suite fast on two cores; a fixed seed makes the random model's output (and
        so the pieces it streams in) the same every run."""
        if "config_path" not in kwargs:
            config_path = tmp_path / "config.toml"
            config_path.write_text(f"[settings]\n{settings_toml}", encoding="utf-8")
            kwargs["config_path"] = config_path
        kwargs.setdefault("loader", shared_loader(tiny_loaded))
        kwargs.setdefault("drafts_dir", tmp_path / "drafts")
        draft_path = kwargs.pop("draft_path", None)
        spec = kwargs.pop("spec", tiny_loaded.spec)
        return StorytermApp(draft_path, spec, **kwargs)

    return make


class StepGate:
    """Pauses the real model before every forward pass (one pass = one decode step) until ``release``."""

    def __init__(self, model) -> None:
        self._permits = threading.Semaphore(0)
        self.calls = 0
        self.calls_at_cancel: int | None = None
        self._lock = threading.Lock()
        self._handle = model.register_forward_pre_hook(self._before_forward)

    def _before_forward(self, _module, _args) -> None:
        with self._lock:
            self.calls += 1
        if not self._permits.acquire(timeout=20):
            raise TimeoutError("test gate never released")

    def release(self, steps: int = 1) -> None:
        self._permits.release(steps)

    def mark_cancel(self) -> None:
        self.calls_at_cancel = self.calls

    def close(self) -> None:
        self._handle.remove()
        self._permits.release(1000)


@pytest.fixture
def step_gate(tiny_loaded: LoadedModel) -> Iterator[StepGate]:
    gate = StepGate(tiny_loaded.model)
    yield gate
    gate.close()


class ScriptedStream:
    """Same interface as GenerationStream; yields fixed pieces, optionally pausing after ``pause_after``."""

    def __init__(self, engine: ScriptedEngine, pieces: list[str], pause_after: int | None) -> None:
        self.engine, self.pieces, self.pause_after = engine, pieces, pause_after
        self._cancelled = threading.Event()
        self._finished = threading.Event()
        self._yielded: list[str] = []

    def __iter__(self) -> Iterator[str]:
        try:
            for index, piece in enumerate(self.pieces):
                if self.pause_after is not None and index == self.pause_after:
                    self.engine.paused.set()
                    self._cancelled.wait(timeout=20)
                if self._cancelled.is_set():
                    break
                self._yielded.append(piece)
                yield piece
        finally:
            self._finished.set()
            self.engine._running = False

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def result(self, timeout: float | None = None) -> GenerationResult:
        self._finished.wait(timeout)
        text = "".join(self._yielded)
        stats = GenerationStats(prompt_tokens=12, new_tokens=len(self._yielded), time_to_first_token_s=0.05,
                                tokens_per_second=20.0, elapsed_s=1.0, context_trimmed=False, context_window=128)
        return GenerationResult(texts=[text], stats=stats, cancelled=self._cancelled.is_set(), seed=7)


class ScriptedEngine:
    """A stand-in for StoryEngine with readable, fixed output (snapshots need the same pixels every run)."""

    PASSAGES = [
        [" The", " ghost", " drifts", " through", " the", " empty", " ballroom,", " humming", " a", " waltz."],
        [" A", " cold", " wind", " slams", " every", " door", " in", " the", " east", " wing."],
        [" Luigi", " hears", " footsteps", " above", " him", " and", " grips", " his", " flashlight."],
    ]

    def __init__(self, loaded: LoadedModel, pause_after: int | None = None) -> None:
        self.loaded = loaded
        self.pause_after = pause_after
        self.paused = threading.Event()
        self.requests: list[GenerationRequest] = []
        self._running = False
        self._real = StoryEngine(loaded)

    @property
    def busy(self) -> bool:
        return self._running

    def stream(self, request: GenerationRequest) -> ScriptedStream:
        self._real.validate(request)
        if self._running:
            raise EngineBusyError("a generation is already running")
        self._running = True
        pieces = self.PASSAGES[len(self.requests) % len(self.PASSAGES)]
        self.requests.append(request)
        return ScriptedStream(self, pieces, self.pause_after)

    def context_usage(self, request: GenerationRequest) -> tuple[int, int]:
        return self._real.context_usage(request)


@pytest.fixture
def scripted_engine() -> type[ScriptedEngine]:
    """The ScriptedEngine class (tests run with --import-mode=importlib, so conftest cannot be imported)."""
    return ScriptedEngine


@pytest.fixture
def tiny_loader(tiny_loaded: LoadedModel) -> Callable[[ModelSpec, Callable[[str], None]], LoadedModel]:
    return shared_loader(tiny_loaded)
