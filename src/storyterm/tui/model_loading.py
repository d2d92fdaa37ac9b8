"""Loading a model for the app: in a thread that never holds the app's exit, with progress in the status bar, and
the panels following the model once it is ready. A mixin of ``StorytermApp``; the model's state itself is the
controller's (``tui/controller.py``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.message import Message
from textual.worker import get_current_worker

from storyterm.engine.checkpoint_defaults import resolve_settings
from storyterm.engine.errors import StorytermError
from storyterm.tui.model_modes import offered_genres, with_checkpoint_defaults

if TYPE_CHECKING:
    from storyterm.engine.generation import StoryEngine
    from storyterm.engine.loading import LoadedModel, ModelSpec
    from storyterm.tui.app import StorytermApp

    _Base = StorytermApp
else:
    _Base = object


class LoadProgress(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class LoadFinished(Message):
    def __init__(self, spec: ModelSpec, loaded: LoadedModel | None, engine: StoryEngine | None,
                 error: str | None, serial: int) -> None:
        super().__init__()
        self.spec, self.loaded, self.engine, self.error = spec, loaded, engine, error
        self.serial = serial


class ModelLoading(_Base):
    loading_threads = 0   # loads still running: run_app ends the process without waiting for them
    _load_serial = 0

    @work(thread=True, exclusive=True, group="load")
    def load_model(self, spec: ModelSpec) -> None:
        """Load in a thread; on failure the previous model stays. Results travel as messages (post_message never
        blocks, unlike call_from_thread, so a quit during the load cannot leave this thread waiting for ever)."""
        def progress(message: str) -> None:
            self._post_from_thread(LoadProgress(message.rstrip("…. ").lower() + "…"))

        # The load itself runs in a daemon thread this worker waits on: a load cannot be interrupted, and asyncio
        # would otherwise hold the app's exit until the worker's executor thread finished loading.
        self._load_serial += 1
        serial = self._load_serial

        def run() -> None:
            self.loading_threads += 1
            try:
                self._load_in_thread(spec, progress, serial)
            finally:
                self.loading_threads -= 1

        loader_thread = threading.Thread(target=run, name="storyterm-load", daemon=True)
        loader_thread.start()
        worker = get_current_worker()
        while loader_thread.is_alive():
            loader_thread.join(0.1)
            if worker.is_cancelled:
                return  # the app is closing: leave the daemon thread behind

    def _load_in_thread(self, spec: ModelSpec, progress: Callable[[str], None], serial: int) -> None:
        try:
            loader = self._loader
            factory = self._engine_factory
            if loader is None:
                from storyterm.engine.loading import load_model as loader
            if factory is None:
                from storyterm.engine.loading import open_engine as factory
            loaded = loader(spec, progress)
            engine = factory(loaded)
        except StorytermError as error:
            self._post_from_thread(LoadFinished(spec, None, None, str(error), serial))
            return
        except Exception as error:  # noqa: BLE001 - e.g. out of memory: report, keep the old model
            message = f"could not load {spec.source}: {first_line(error)}{self._debug_traceback(error)}"
            self._post_from_thread(LoadFinished(spec, None, None, message, serial))
            return
        self._post_from_thread(LoadFinished(spec, loaded, engine, None, serial))

    def _debug_traceback(self, error: BaseException) -> str:
        """With ``--debug``: append the traceback to the debug log and say where it is (else nothing)."""
        if not self.debug_mode:
            return ""
        import datetime
        import traceback

        path = debug_log_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as log:
                log.write(f"--- {datetime.datetime.now().isoformat(timespec='seconds')}\n")
                log.write("".join(traceback.format_exception(error)))
        except OSError as log_error:
            return f" (traceback not written: {first_line(log_error)})"
        return f" (traceback in {path})"

    def _post_from_thread(self, message: Message) -> None:
        try:
            self.post_message(message)
        except RuntimeError:
            pass  # the app has closed (its event loop is gone): nobody is left to tell

    def _load_finished(self, message: LoadFinished) -> None:
        if message.serial != self._load_serial:
            return  # an older load, overtaken by a later switch
        if message.error is not None or message.loaded is None or message.engine is None:
            from storyterm.tui.screens.model_switch import for_editor

            self.controller.load_refused(for_editor(message.error or "the model did not load"))
        else:
            self.controller.load_finished(message.spec, message.loaded, message.engine)

    def model_ready(self, loaded: LoadedModel) -> None:
        """The panels follow the new model: its window, genres, instruct mode and checkpoint defaults."""
        self.panel.context_window = loaded.context_window
        self.panel._revalidate()
        self.panel.set_word_list(loaded.has_word_list)
        self._show_genres(self.draft.genre or self.config.genre)
        self.picker.set_instruct(loaded.has_chat_template, self.instruct)
        self.panel.set_model_defaults(resolve_settings({}, loaded.checkpoint_settings)
                                      if loaded.checkpoint_settings else None)
        settings = with_checkpoint_defaults(self.draft.settings, loaded, self.config)
        if settings != self.draft.settings:  # the checkpoint's defaults, where the writer set nothing
            self.draft.settings = settings
            self.panel.set_settings(settings)
        self._update_status()
        summary = genre_summary(list(offered_genres(loaded, self.config).genres), bool(loaded.genres))
        self.notify(f"Model {loaded.name} ready ({summary}{', instruct mode' if self.instruct else ''})", timeout=3)
        self._schedule_context_usage(0)

    def _show_genres(self, selected: str | None) -> None:
        """The picker shows the model's genre tokens, or genres in words (with free mode as a choice)."""
        assert self.loaded is not None
        choice = offered_genres(self.loaded, self.config)
        self.picker.set_genres(list(choice.genres), selected, in_words=choice.in_words)
        self._adopt_picker_genre()

    def action_switch_model(self) -> None:
        from storyterm.tui.screens.model_switch import ModelSwitchScreen

        if self.controller.may_switch_model():
            self.push_screen(ModelSwitchScreen(self.spec), self._model_chosen)

    def _model_chosen(self, spec: ModelSpec | None) -> None:
        if spec is None:
            return
        self.controller.load_started(f"loading {spec.source}…")
        self.notify(f"Loading {spec.source}…", timeout=3)
        self.load_model(spec)


def genre_summary(genres: list[str], tokens: bool = True) -> str:
    if not genres:
        return "free mode"
    return f"{len(genres)} genres" if tokens else f"{len(genres)} genres in words"


def debug_log_path() -> Path:
    """Where ``--debug`` writes the tracebacks of unexpected errors (a notification cannot hold one)."""
    import platformdirs

    return platformdirs.user_log_path("storyterm") / "debug.log"


def first_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
