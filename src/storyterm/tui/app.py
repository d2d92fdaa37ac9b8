"""The storyterm Textual app: genre picker, editor, parameter panel, status bar, and the generate/accept loop.

The app only arranges widgets and forwards the writer's intentions: the story and its alternatives live in a
``storyterm.story.Draft``, generation is ``StoryEngine.stream()`` consumed in a worker thread. torch and
transformers are imported only inside the load worker, so the first frame never waits for them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Header, Input, TextArea
from textual.worker import get_current_worker

from storyterm.config import DEFAULT_KEYS, load_config, save_config
from storyterm.engine.devices import dtype_name
from storyterm.engine.errors import StorytermError
from storyterm.engine.prompt import opening_text, title_prompt
from storyterm.story import Draft, DraftInfo, default_drafts_dir, list_drafts, load_draft, new_draft_path
from storyterm.story.autosave import Autosaver
from storyterm.story.session import Session, find_crashed_sessions
from storyterm.story.workspace import Workspace, emergency_dir
from storyterm.tui.draft_actions import DraftActions
from storyterm.tui.token_view import TokenView
from storyterm.tui.keymap import BY_NAME, STORY_ACTIONS, build_bindings, key_table, pretty_keys, system_commands
from storyterm.tui.model_modes import (
    draft_genre,
    instruct_on,
    mode_label,
    offered_genres,
    remembered_genre,
    with_checkpoint_defaults,
)
from storyterm.tui.widgets.editor import StoryEditor, editor_form
from storyterm.tui.widgets.footer import StoryFooter
from storyterm.tui.widgets.genre_picker import GenrePicker
from storyterm.tui.widgets.main_layout import FOCUS_MODE_BELOW, MainLayout
from storyterm.tui.widgets.parameter_panel import ParameterPanel
from storyterm.tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from storyterm.engine.generation import GenerationRequest, GenerationResult, GenerationStream, StoryEngine
    from storyterm.engine.loading import LoadedModel, ModelSpec

    Loader = Callable[[ModelSpec, Callable[[str], None]], LoadedModel]
    EngineFactory = Callable[[LoadedModel], StoryEngine]

AUTOSAVE_TICK_S = 0.25
WidgetT = TypeVar("WidgetT", bound=Widget)
CONTEXT_USAGE_DELAY_S = 0.4

class StorytermApp(TokenView, DraftActions, App[int]):
    CSS_PATH = [Path(__file__).parent / "app.tcss", Path(__file__).parent / "dialogs.tcss"]
    TITLE = "storyterm"
    BINDINGS = build_bindings(DEFAULT_KEYS)
    # Screen classes that let the side panels shrink before focus mode hides them (app.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (FOCUS_MODE_BELOW, "-medium"), (120, "-wide")]

    class PendingPiece(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

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

    class GenerationFinished(Message):
        def __init__(self, request: GenerationRequest, result: GenerationResult | None, error: str | None) -> None:
            super().__init__()
            self.request, self.result, self.error = request, result, error

    def __init__(
        self,
        draft_path: Path | None = None,
        spec: ModelSpec | None = None,
        *,
        loader: Loader | None = None,
        engine_factory: EngineFactory | None = None,
        config_path: Path | None = None,
        drafts_dir: Path | None = None,
        handle_signals: bool = False,
        use_session: bool = False,
        debug: bool = False,
        last_draft_record: Path | None = None,
        notices: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.last_draft_record = last_draft_record  # where the open draft is remembered for the next launch
        from storyterm.engine.loading import ModelSpec  # no torch import: loading imports it lazily

        self.spec = spec or ModelSpec()
        self._loader = loader
        self._engine_factory = engine_factory
        self.config_path = config_path
        self.drafts_dir = drafts_dir or default_drafts_dir()
        self.handle_signals = handle_signals
        self.hard_exit_s: float | None = None  # run_app sets it: the process must end after SIGTERM/SIGHUP
        self.loading_threads = 0
        self._load_serial = 0
        self.debug_mode = debug
        self.config, self._config_warnings = load_config(config_path)
        self._config_warnings.extend(notices)  # shown as warnings once the editor is up
        self.set_keymap(self.config.keymap_overrides())
        if self.config.theme:
            try:
                self.theme = self.config.theme
            except Exception:  # noqa: BLE001 - an unknown theme name in the config is not worth a crash
                self._config_warnings.append(f"unknown theme {self.config.theme!r} ignored")

        self.loaded: LoadedModel | None = None
        self.engine: StoryEngine | None = None
        self.load_failed: str | None = None
        self.model_loading = False
        self.load_state = "loading…"  # what the status bar says about the model while none is ready
        self.generating = False
        self._stream: GenerationStream | None = None
        self._generate_when_loaded = False
        self._accept_when_stopped = False
        self._run_story_before = ""
        self._context_timer: Timer | None = None
        self._save_error: str | None = None
        self.use_session = use_session
        self.session: Session | None = None
        self._editor_ahead = False  # the editor holds typing the Draft has not seen yet (see sync_editor)
        self._widgets: dict[str, Widget] = {}  # see _mounted
        self._behind_editor_keys = False  # an action is running after the editor's queued keys (run_action)
        self.exit_message: str | None = None  # run_app prints it on stderr (e.g. where the emergency copy is)
        self._emergency: tuple[int, Path] | None = None  # (draft revision, copy) of the last emergency copy

        self.workspace, self._draft_error = Workspace.open(draft_path, self.drafts_dir, self._new_draft)

    @property
    def draft(self) -> Draft:
        return self.workspace.draft

    @property
    def autosaver(self) -> Autosaver:
        return self.workspace.autosaver

    @property
    def draft_path(self) -> Path | None:
        """The draft's file; None for a new draft until its first save claims one."""
        return self.workspace.path

    def notify(self, message: str, *, title: str = "", severity: Any = "information", timeout: float | None = None,
               markup: bool = False) -> None:
        """Notifications quote titles, paths and errors: shown literally unless a caller asks for markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # -- layout -------------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="✎")
        with MainLayout(id="main"):
            yield GenrePicker(id="genre-picker")
            yield StoryEditor(
                editor_form(self.draft.text),
                id="editor",
                placeholder="Type the start of a story, or pick a starter — then ctrl+g.",
            )
            yield ParameterPanel(self.draft.settings, self.draft.memory, id="parameters")
        yield StatusBar(id="status")
        yield StoryFooter(compact=True)  # compact: the story keys fit in 80 columns

    def _mounted(self, selector: str, kind: type[WidgetT]) -> WidgetT:
        # Held once found: a timer that ticks while the app shuts down (its widgets already
        # detached) still reads the writer's words and updates the status instead of failing.
        widget = self._widgets.get(selector)
        if widget is None:
            widget = self._widgets[selector] = self.query_one(selector, kind)
        return widget  # type: ignore[return-value]

    @property
    def editor(self) -> StoryEditor:
        return self._mounted("#editor", StoryEditor)

    @property
    def status(self) -> StatusBar:
        return self._mounted("#status", StatusBar)

    @property
    def picker(self) -> GenrePicker:
        return self._mounted("#genre-picker", GenrePicker)

    @property
    def panel(self) -> ParameterPanel:
        return self._mounted("#parameters", ParameterPanel)

    def on_mount(self) -> None:
        self.editor.focus()
        self.editor.move_cursor(self.editor.document.end)
        self.picker.set_title(self.draft.title if self.draft.title != "Untitled" else "")
        self._refresh_editor()
        self._update_status()
        for warning in self._config_warnings:
            self.notify(warning, severity="warning")
        if self._draft_error:
            self.notify(self._draft_error, severity="error", timeout=8)
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(signum, self._terminate, signum)
        self.set_interval(AUTOSAVE_TICK_S, self._autosave_tick)
        if self.use_session:
            self._offer_recovery()
            try:
                self.session = Session.start(self.draft_path)
            except (StorytermError, OSError) as error:
                self.notify(f"no crash-recovery marker: {_first_line(error)}", severity="warning")
        self.model_loading = True
        self._show_load_state("loading…")
        # Start loading after the first frame is painted: importing torch in the worker holds the GIL a lot.
        self.call_after_refresh(self.load_model, self.spec)

    # -- model loading ------------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="load")
    def load_model(self, spec: ModelSpec) -> None:
        """Load in a thread; on failure the previous model stays. Results travel as messages (post_message never
        blocks, unlike call_from_thread, so a quit during the load cannot leave this thread waiting for ever)."""
        def progress(message: str) -> None:
            self._post_from_thread(self.LoadProgress(message.rstrip("…. ").lower() + "…"))

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
                from storyterm.engine.generation import StoryEngine as factory
            loaded = loader(spec, progress)
            engine = factory(loaded)
        except StorytermError as error:
            self._post_from_thread(self.LoadFinished(spec, None, None, str(error), serial))
            return
        except Exception as error:  # noqa: BLE001 - e.g. out of memory: report, keep the old model
            message = f"could not load {spec.source}: {_first_line(error)}{self._debug_traceback(error)}"
            self._post_from_thread(self.LoadFinished(spec, None, None, message, serial))
            return
        self._post_from_thread(self.LoadFinished(spec, loaded, engine, None, serial))

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
            return f" (traceback not written: {_first_line(log_error)})"
        return f" (traceback in {path})"

    def _post_from_thread(self, message: Message) -> None:
        try:
            self.post_message(message)
        except RuntimeError:
            pass  # the app has closed (its event loop is gone): nobody is left to tell

    @on(LoadProgress)
    def _load_progress(self, message: LoadProgress) -> None:
        if self.model_loading:  # a switch's progress as much as the first load's
            self._show_load_state(message.text)

    @on(LoadFinished)
    def _load_finished(self, message: LoadFinished) -> None:
        if message.serial != self._load_serial:
            return  # an older load, overtaken by a later switch
        self.model_loading = False
        if message.error is not None or message.loaded is None or message.engine is None:
            self._load_failed(message.spec, message.error or "the model did not load")
        else:
            self._load_done(message.spec, message.loaded, message.engine)

    def _load_done(self, spec: ModelSpec, loaded: LoadedModel, engine: StoryEngine) -> None:
        self.spec, self.loaded, self.engine, self.load_failed = spec, loaded, engine, None
        self.panel.context_window = loaded.context_window
        self.panel._revalidate()
        self._show_genres(self.draft.genre or self.config.genre)
        self.picker.set_instruct(loaded.has_chat_template, self.instruct)
        settings = with_checkpoint_defaults(self.draft.settings, loaded, self.config)
        if settings != self.draft.settings:  # the checkpoint's defaults, where the writer set nothing
            self.draft.settings = settings
            self.panel.set_settings(settings)
        self.draft.model_id = loaded.name
        self._update_status()
        summary = _genre_summary(list(offered_genres(loaded, self.config).genres), bool(loaded.genres))
        self.notify(f"Model {loaded.name} ready ({summary}{', instruct mode' if self.instruct else ''})", timeout=3)
        self._schedule_context_usage(0)
        if self._generate_when_loaded:
            self._generate_when_loaded = False
            self.action_generate()

    def _show_genres(self, selected: str | None) -> None:
        """The picker shows the model's genre tokens, or genres in words (with free mode as a choice)."""
        assert self.loaded is not None
        choice = offered_genres(self.loaded, self.config)
        self.picker.set_genres(list(choice.genres), selected, in_words=choice.in_words)
        self._adopt_picker_genre()

    @property
    def instruct(self) -> bool:
        """Instruct mode: the loaded model has a chat template and the writer has not switched it off."""
        return instruct_on(self.loaded, self.config)

    def _load_failed(self, spec: ModelSpec, message: str) -> None:
        from storyterm.tui.screens.model_switch import for_editor

        message = for_editor(message)
        self._generate_when_loaded = False
        if self.engine is None:
            self.load_failed = message
        self.notify(message, title="Model not loaded", severity="error", timeout=10)
        if self.engine is not None:
            self.notify(f"Still using {self.loaded.name if self.loaded else 'the previous model'}.", timeout=4)
        self._update_status()

    # -- generation ---------------------------------------------------------------------------------------------

    def action_generate(self) -> None:
        if self.generating:
            return  # a second ctrl+g while one runs is ignored on purpose
        if self._settings_invalid():
            return
        if self.engine is None:
            if self.load_failed:
                self.notify(f"No model: {self.load_failed}. Press F2 to choose one.", severity="error")
                return
            self._generate_when_loaded = True
            self._show_load_state("waiting for model…")
            self.notify("The model is still loading; generation starts as soon as it is ready.", timeout=3)
            return
        if not self.draft.text.strip():
            opening = self._opening_prompt()
            if opening:
                self.draft.set_text(opening, coalesce=False)
                self.draft.break_undo_group()
        self._start_stream()

    def action_regenerate(self) -> None:
        """Another alternative at the same spot; earlier ones stay in the draft as siblings. With a pending
        passage that spot is the end of the story. With none, and the story still ending with the passage accepted
        last, it is that passage's spot: the new alternative streams in its place (f7 brings it back)."""
        if self.generating or self._settings_invalid():
            return
        head = self.draft.last_accepted
        at_accepted_spot = (
            self.draft.pending is None
            and head is not None
            and self.draft.alternative_index is not None
            and self.draft.text.endswith(head.text)
        )
        if not at_accepted_spot or self.engine is None:
            if self.draft.pending is None and head is not None and self.engine is not None:
                # Say what happens instead of quietly doing something else.
                self.notify("The story was edited after the last passage, so there is nothing to regenerate "
                            "at its end: generating a new passage.", timeout=5)
            self.action_generate()
            return
        assert head is not None
        self._start_stream(story=self.draft.text[: len(self.draft.text) - len(head.text)])

    def action_extend(self) -> None:
        if self._settings_invalid():
            return
        if self.draft.pending is not None:
            self.action_accept()
        self.action_generate()

    def _settings_invalid(self) -> bool:
        """A field showing an invalid value must not be silently replaced by the last valid one."""
        if self.panel.error is None:
            return False
        self.notify(f"{self.panel.error} (Sampling panel).", title="Not generated", severity="error")
        return True

    def _opening_prompt(self) -> str:
        """When the story is empty: the starter highlighted in the picker, else the title prompt."""
        starter = self.picker.highlighted_starter
        if starter:
            return opening_text(starter)
        title = self.picker.title_text
        if title and not self.instruct:  # a chat model is told the title in its request instead
            return opening_text(title_prompt(title, self.picker.genre))
        return ""

    def current_request(self) -> GenerationRequest:
        from storyterm.engine.generation import GenerationRequest

        return GenerationRequest(
            genre=self.picker.genre,
            story=self.draft.text,
            memory=self.draft.memory,
            settings=self.draft.settings,
            word_genres=self.config.word_genres,
            instruct=self.instruct,
            title=self.picker.title_text,
        )

    def _start_stream(self, story: str | None = None) -> None:
        """``story``: continue from this text instead of the whole story (regenerating the last accepted passage:
        the Draft changes only when the new alternative arrives, so a failed run leaves it as it was)."""
        assert self.engine is not None
        request = self.with_token_probs(self.current_request())
        if story is not None:
            request = replace(request, story=story)
        self._run_story_before = self.draft.text
        try:
            stream = self.open_stream(request)  # a token swap's stream when one was asked for (token_view.py)
        except StorytermError as error:
            self.notify(str(error), title="Cannot generate", severity="error")
            return
        self.generating = True
        self._stream = stream
        self.editor.show(request.story, "")  # a regenerate replaces the shown alternative while it streams
        self.editor.move_cursor(self.editor.document.end)
        self.editor.set_generating(True)
        self.status.set(load_state="generating…", alternative=None)
        self.refresh_bindings()
        self._consume_stream(stream, request)

    @work(thread=True, exclusive=True, group="generate")
    def _consume_stream(self, stream: GenerationStream, request: GenerationRequest) -> None:
        worker = get_current_worker()
        try:
            for piece in stream:
                if worker.is_cancelled:
                    stream.cancel()
                    break
                self._post_from_thread(self.PendingPiece(piece))
            result = stream.result()
        except StorytermError as error:
            self._post_from_thread(self.GenerationFinished(request, None, str(error)))
            return
        except Exception as error:  # noqa: BLE001 - out of memory and friends become a notification
            message = f"generation failed: {_first_line(error)}{self._debug_traceback(error)}"
            self._post_from_thread(self.GenerationFinished(request, None, message))
            return
        self._post_from_thread(self.GenerationFinished(request, result, None))

    @on(PendingPiece)
    def _pending_piece(self, message: PendingPiece) -> None:
        if self.generating:
            self.editor.append_pending(message.text)

    @on(GenerationFinished)
    def _generation_finished(self, message: GenerationFinished) -> None:
        self.generating = False
        self._stream = None
        self.editor.set_generating(False)
        accept_now, self._accept_when_stopped = self._accept_when_stopped, False
        result = message.result
        if message.error is not None or result is None:
            self.notify(message.error or "generation failed", title="Generation failed", severity="error")
        elif self.draft.text != self._run_story_before:
            # The story changed under the run (cannot happen while the editor is read-only; be safe anyway).
            self.notify("The story changed during generation; the passage was discarded.", severity="warning")
        else:
            self._record_result(message.request, result)
            stats = result.stats
            self.status.set(tokens_per_second=stats.tokens_per_second,
                            time_to_first_token_s=stats.time_to_first_token_s)
            if stats.context_trimmed:
                self.notify("The story is longer than the model's context: its start was left out.", timeout=4)
        self._refresh_editor()
        self._update_status()
        self.refresh_bindings()
        if accept_now and self.draft.pending is not None:
            self.action_accept()
        self._story_changed()

    def _record_result(self, request: GenerationRequest, result: GenerationResult) -> None:
        model = self.loaded.name if self.loaded else self.spec.source
        # Line breaks as the editor shows them, so the story in the Draft and on screen stay equal.
        texts = [editor_form(t) for t in (result.texts[:1] if result.cancelled else result.texts)]
        texts = [t for t in texts if t]
        if not texts:
            if not result.cancelled:  # stopped before the first word: nothing to say
                self.notify("The model produced no text; try again or change the settings.", severity="warning")
            return
        if self.record_swap(request, result, model):
            return
        if request.story != self.draft.text:
            # Regenerating the accepted passage: the story goes back to where that passage began.
            self.draft.set_text(request.story, coalesce=False)
        tokens = dict(zip(result.texts, result.tokens))  # each text's token probabilities, when measured
        added = [
            self.draft.add_alternative(text, genre=request.genre, settings=request.settings, seed=result.seed,
                                       model=model, stopped=result.cancelled, tokens=tokens.get(text))
            for text in texts
        ]
        # The streamed alternative (texts[0]) is the one to show.
        ids = [p.id for p in self.draft.alternatives()]
        if added[0].id in ids and self.draft.pending is not None and self.draft.pending.id != added[0].id:
            self.draft.select_alternative(ids.index(added[0].id), coalesce=False)  # not the writer browsing

    def action_stop(self) -> None:
        if self.generating and self._stream is not None:
            self._stream.cancel()
            self.status.set(load_state="stopping…")
        elif self.draft.pending is not None:
            self.draft.dismiss()
            self._refresh_editor()
            self._story_changed()

    def action_accept(self, anywhere: bool = False) -> None:
        if self.generating:
            # Keep what streamed so far and accept it as soon as the run has stopped.
            self._accept_when_stopped = True
            self.action_stop()
            return
        if self.draft.pending is None:
            return
        self.draft.accept()
        self.editor.show(self.draft.text, "")
        self.editor.accept_pending()
        self._story_changed()

    def action_cycle(self, step: int) -> None:
        alternatives = self.draft.alternatives()
        if not alternatives:
            self.notify("No alternatives here yet: ctrl+r generates one.", timeout=3)
            return
        index = self.draft.alternative_index
        self.draft.select_alternative((index if index is not None else -step) + step)
        self._refresh_editor()
        self._story_changed()

    def action_undo(self) -> None:
        if not self.draft.undo():
            self.bell()
        self._refresh_editor()
        self._story_changed()

    def action_redo(self) -> None:
        if not self.draft.redo():
            self.bell()
        self._refresh_editor()
        self._story_changed()

    @on(StoryEditor.UndoRequested)
    def _editor_undo(self) -> None:
        if not self.generating:
            self.action_undo()

    @on(StoryEditor.RedoRequested)
    def _editor_redo(self) -> None:
        if not self.generating:
            self.action_redo()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action not in BY_NAME:
            return True
        modal_open = isinstance(self.screen, ModalScreen)
        if modal_open and action not in ("quit",):
            return False  # let the modal have its keys (escape, tab, …)
        if action == "accept":
            # The key accepts only in the editor and only with something to accept; anywhere else tab moves
            # focus (None: the footer shows Accept greyed). The palette passes anywhere=True.
            shown = self.draft.pending is not None and bool(self.editor.pending_text)  # not typed over
            if not (self.generating or shown):
                return False
            return True if parameters == (True,) or isinstance(self.focused, StoryEditor) else None
        if action == "stop":
            return self.generating or self.draft.pending is not None
        if action in ("undo", "redo"):
            # Inputs and the memory field keep their own undo; elsewhere undo goes through the Draft.
            focused = self.focused
            if focused is not None and not isinstance(focused, StoryEditor) and isinstance(focused, (TextArea, Input)):
                return False
        if self.generating and action in STORY_ACTIONS:
            return None
        return True

    # -- the writer's edits ---------------------------------------------------------------------------------------

    # Reading the editor's whole text costs O(story), so it is not done per keystroke: a change only marks the
    # editor ahead of the Draft, and one sync runs after the keys already queued (a paste that arrives as
    # keystrokes costs one read, not one per character). Every action syncs first (run_action), and so do the
    # autosave tick, quit and the signal handlers.

    @on(TextArea.Changed, "#editor")
    def _editor_changed(self, event: TextArea.Changed) -> None:
        if self.generating or self._editor_ahead:
            return
        self._editor_ahead = True
        self.call_later(self._sync_queued_typing)

    def _sync_queued_typing(self) -> None:
        if self._editor_ahead:
            self.sync_editor()

    @on(StoryEditor.PendingDismissedByEdit)
    def _pending_dismissed_by_edit(self) -> None:
        self.sync_editor()

    def sync_editor(self) -> None:
        """Bring the Draft up to the editor's text (typing since the last sync). It always reads the editor: keys
        typed just before an action (ctrl+g, ctrl+q) can be in the document before their Changed messages reach
        the app, and a flag set by those messages would lose them."""
        self._editor_ahead = False
        if self.generating:
            return
        story = self.editor.story_text
        if story != editor_form(self.draft.text):
            self.draft.set_text(story)  # also hides a pending passage the writer typed over
            self._story_changed(typing=True)

    async def run_action(self, action: Any, default_namespace: Any = None, namespaces: Any = None) -> bool:
        name = action.split("(")[0].removeprefix("app.") if isinstance(action, str) else None
        if (name in BY_NAME and self.focused is self.editor and not self._behind_editor_keys
                and self.check_action(name, ())):  # a disabled binding must stay unhandled (tab then moves focus)
            # A priority binding (ctrl+g, ctrl+q…) overtakes keys still queued in the editor: typing followed at
            # once by ctrl+g would be generated over and lost. Run the action after the editor's queued keys.
            self.editor.call_later(self.call_later, self._run_behind_editor_keys, action, default_namespace,
                                   namespaces)
            return True
        self.sync_editor()
        return await super().run_action(action, default_namespace, namespaces)

    async def _run_behind_editor_keys(self, action: Any, default_namespace: Any, namespaces: Any) -> None:
        self._behind_editor_keys = True
        try:
            await self.run_action(action, default_namespace, namespaces)
        finally:
            self._behind_editor_keys = False

    def _story_changed(self, *, typing: bool = False) -> None:
        """After every change: typing is saved by the autosave tick, anything structural right away."""
        if typing:
            self.autosaver.note_edit()
        else:
            self.save_now()
        self._update_status()
        self._schedule_context_usage(CONTEXT_USAGE_DELAY_S)
        self.refresh_token_view()

    def _refresh_editor(self) -> None:
        pending = self.draft.pending
        self.editor.show(self.draft.text, pending.text if pending else "")
        self.refresh_token_view()

    # -- panels -------------------------------------------------------------------------------------------------

    @on(ParameterPanel.SettingsChanged)
    def _settings_changed(self, message: ParameterPanel.SettingsChanged) -> None:
        before, after = self.draft.settings.to_dict(), message.settings.to_dict()
        # What the writer changes is theirs from now on: a checkpoint's defaults no longer fill it.
        self.config.settings_set |= {name for name in after if after[name] != before.get(name)}
        self.draft.settings = message.settings
        self.config.settings = message.settings
        self.config.preset = message.preset
        self._remember_config()
        self._story_changed()

    @on(ParameterPanel.MemoryChanged)
    def _memory_changed(self, message: ParameterPanel.MemoryChanged) -> None:
        self.draft.memory = message.memory
        self._story_changed(typing=True)

    @on(GenrePicker.GenreChosen)
    def _genre_chosen(self, message: GenrePicker.GenreChosen) -> None:
        self.draft.genre = message.genre
        self.config.genre = remembered_genre(message.genre)
        self._remember_config()
        self._story_changed()

    @on(GenrePicker.InstructChanged)
    def _instruct_changed(self, message: GenrePicker.InstructChanged) -> None:
        self.config.instruct = message.instruct
        self._remember_config()
        self._update_status()
        self._schedule_context_usage(0)

    @on(GenrePicker.StarterChosen)
    def _starter_chosen(self, message: GenrePicker.StarterChosen) -> None:
        self.sync_editor()
        if self.generating:
            return
        if self.draft.text.strip():
            self.notify("Starters begin an empty story; press ctrl+n for a new draft.", timeout=3)
            return
        self.draft.set_text(opening_text(message.starter), coalesce=False)
        self._refresh_editor()
        self.editor.focus()
        self.editor.move_cursor(self.editor.document.end)
        self._story_changed()

    @on(GenrePicker.TitleSubmitted)
    def _title_submitted(self, message: GenrePicker.TitleSubmitted) -> None:
        self.sync_editor()
        self.draft.title = message.title
        if not self.draft.text.strip() and not self.generating and not self.instruct:
            self.draft.set_text(opening_text(title_prompt(message.title, self.picker.genre)), coalesce=False)
            self._refresh_editor()
        self.editor.focus()
        self.editor.move_cursor(self.editor.document.end)
        self._story_changed()

    def _remember_config(self) -> None:
        try:
            save_config(self.config, self.config_path)
        except (OSError, StorytermError) as error:
            self.notify(f"config not saved: {_first_line(error)}", severity="warning")

    def watch_theme(self, theme: str) -> None:
        if getattr(self, "config", None) is not None and self.config.theme != theme and self.is_running:
            self.config.theme = theme
            self._remember_config()

    # -- status -------------------------------------------------------------------------------------------------

    def _update_status(self) -> None:
        self._remember_draft_path()
        loaded = self.loaded
        if self.generating:
            state = "generating…"
        elif loaded is None:
            state = "load failed" if self.load_failed else self.load_state
        elif self.model_loading:
            state = self.load_state
        else:
            state = "ready"
        count = self.draft.alternative_count
        index = self.draft.alternative_index
        try:
            status = self.status
        except NoMatches:
            return  # an autosave tick while the app is closing: the widgets are gone, the save is done
        status.set(
            model=loaded.name if loaded else self.spec.source,
            device=str(loaded.device) if loaded else self.spec.device,
            dtype=dtype_name(loaded.dtype) if loaded else self.spec.dtype,
            load_state=state,
            mode=mode_label(loaded, self.picker.genre, self.instruct),
            context_window=loaded.context_window if loaded else None,
            draft_name=self.draft_path.stem if self.draft_path else self.draft.title,
            saved=not self.autosaver.dirty or not self._worth_saving(),
            alternative=(index + 1, count) if index is not None and count > 1 else None,
            genre=self.draft.genre,
            words=self.draft.word_count,
        )

    def _show_load_state(self, text: str) -> None:
        self.load_state = text
        # While switching the old model still works, but the bar says what is happening.
        if not self.generating and (self.loaded is None or self.model_loading):
            self.status.set(load_state=text)

    def _schedule_context_usage(self, delay: float) -> None:
        if self._context_timer is not None:
            self._context_timer.stop()
            self._context_timer = None
        if delay <= 0:
            self.call_after_refresh(self.update_context_usage)
        else:
            self._context_timer = self.set_timer(delay, self.update_context_usage)

    def update_context_usage(self) -> None:
        if self.engine is None:
            return
        try:
            used, window = self.engine.context_usage(self.current_request())
        except (StorytermError, NoMatches):  # NoMatches: the app closed before this deferred call ran
            return
        self.status.set(context_used=used, context_window=window)

    # -- drafts -------------------------------------------------------------------------------------------------
    # Saving follows storyterm.story.autosave: typing is saved ~1.5 s after the first unsaved keystroke (a 0.25 s
    # tick), structural changes (accept, generate, switch, dismiss, undo, settings) at once, and on quit/SIGTERM.

    def _new_draft(self) -> Draft:
        return Draft(genre=draft_genre(self.config.genre), settings=self.config.settings)

    def _worth_saving(self) -> bool:
        return self.workspace.worth_saving()

    def _autosave_tick(self) -> None:
        self.sync_editor()
        try:
            saved = self.workspace.maybe_save()
        except StorytermError as error:
            self._report_save_error(error)
            return
        if saved:
            self._after_save()

    def save_now(self, *, force: bool = False) -> bool:
        """Save at once if anything is unsaved; False (with a notification) when the save failed."""
        try:
            saved = self.workspace.save_now(force=force)
        except StorytermError as error:
            self._report_save_error(error)
            return False
        if saved or force:
            self._after_save()
        return True

    def _after_save(self) -> None:
        self.draft.break_undo_group()  # a save marks a pause: the next keystrokes start a new undo step
        self._save_error = None
        if self.session is not None and self.session.draft_path != self.draft_path:
            self._session_call(self.session.set_draft, self.draft_path)
        self._update_status()

    def _report_save_error(self, error: StorytermError) -> None:
        if str(error) != self._save_error:  # one notification per distinct failure, not one per tick
            self._save_error = str(error)
            keys = pretty_keys({**DEFAULT_KEYS, **self.config.keys}["save_as"])
            self.notify(f"{error} ({keys}: save as)", title="Not saved", severity="error", timeout=10)
        self._update_status()

    def action_save(self) -> None:
        self.draft.break_undo_group()
        if not self.autosaver.dirty and self.draft_path is not None:
            self.notify(f"Saved {self.draft_path}", timeout=2)
        elif self.save_now(force=True):
            self.notify(f"Saved {self.draft_path}", timeout=2)

    def action_save_as(self, then_quit: bool = False) -> None:
        from storyterm.tui.screens.save_as import SaveAsScreen

        folder = self.workspace.target.parent
        suggestion = new_draft_path(self.draft.title, folder)

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            try:
                written = self.workspace.save_as(path)
            except StorytermError as error:
                self.notify(str(error), title="Not saved", severity="error", timeout=10)
                return
            self._after_save()
            self.notify(f"Saved as {written}", timeout=3)
            if then_quit:
                self._quit_saved()

        self.push_screen(SaveAsScreen(suggestion), chosen)

    def action_new(self) -> None:
        if not self.save_now():
            return
        self._switch_draft(Workspace.new(self._new_draft(), self.drafts_dir))
        self.picker.set_title("")

    def action_open(self) -> None:
        from storyterm.tui.screens.open_draft import OpenDraftScreen

        try:
            infos: list[DraftInfo] = list_drafts(self.drafts_dir)
        except StorytermError as error:
            self.notify(str(error), severity="error")
            infos = []
        rows = [(_draft_label(info), info.path) for info in infos]
        self.push_screen(OpenDraftScreen(rows, self.drafts_dir), self._open_chosen)

    def _open_chosen(self, path: Path | None) -> None:
        if path is None:
            return
        try:
            draft = load_draft(path)
        except StorytermError as error:
            self.notify(str(error), title="Not opened", severity="error")
            return
        if not self.save_now():
            return
        self._switch_draft(Workspace.opened(draft, path))

    def _switch_draft(self, workspace: Workspace) -> None:
        self.workspace = workspace
        draft = workspace.draft
        if self.session is not None:
            self._session_call(self.session.set_draft, workspace.path)
        self.panel.set_settings(draft.settings)
        self.panel.set_memory(draft.memory)
        self.picker.set_title(draft.title if draft.title != "Untitled" else "")
        if self.loaded is not None:
            self._show_genres(draft.genre)
        self.editor.show("", "")
        self._refresh_editor()
        self.editor.move_cursor(self.editor.document.end)
        self.editor.focus()
        self._update_status()
        self._schedule_context_usage(0)

    def _offer_recovery(self) -> None:
        """A previous run died without closing: offer its newest autosaved draft."""
        crashed = find_crashed_sessions()
        offer = next((c for c in crashed if c.draft_path is not None), None)
        if offer is None or _same_path(offer.draft_path, self.draft_path):  # already open (the last draft)
            for stale in crashed:
                stale.discard()
            return
        from storyterm.tui.screens.confirm import ConfirmScreen

        when = f" (autosaved {offer.last_saved:%Y-%m-%d %H:%M})" if offer.last_saved else ""
        question = (f"storyterm did not close cleanly. Reopen {offer.draft_path.name}{when}? "
                    "Either way the draft stays in your drafts folder (ctrl+o).")

        def answered(yes: bool | None) -> None:
            for stale in crashed:
                stale.discard()
            if not yes:
                return
            try:
                draft, path = offer.load_newest()
            except StorytermError as error:
                self.notify(str(error), title="Not recovered", severity="error")
                return
            if not self.save_now():
                return
            # Only the backup was readable, or the draft is an emergency copy: keep it under a new name.
            if path != offer.draft_path or _is_inside(path, emergency_dir()):
                self._switch_draft(Workspace.new(draft, self.drafts_dir))
                self.save_now(force=True)
            else:
                self._switch_draft(Workspace.opened(draft, path))
            self.notify(f"Recovered {(self.draft_path or path).name}", timeout=4)

        self.push_screen(ConfirmScreen(question, yes="Reopen", no="Not now"), answered)

    def _session_call(self, method: Callable[..., Any], *args: Any) -> None:
        try:
            method(*args)
        except (StorytermError, OSError) as error:
            self.notify(f"session marker: {_first_line(error)}", severity="warning")

    # -- quitting: never without the work -------------------------------------------------------------------------
    # A quit saves first. When the save fails the draft goes to an emergency copy in the state folder, whatever
    # happens next; the writer is asked (save as, quit anyway, stay), and a quit without the draft saved in its
    # own file exits 1 and says on stderr where the copy is. The session marker then points at the copy, so the
    # next start offers it.

    def _final_save(self) -> bool:
        """Stop a run and save; True when nothing is left unsaved."""
        if self._stream is not None:
            self._stream.cancel()
        self.sync_editor()
        self.save_now()
        return not self.workspace.unsaved_work

    def _quit_saved(self) -> None:
        if self.session is not None:
            self._session_call(self.session.close)
        self.exit(0)

    async def action_quit(self) -> None:
        from storyterm.tui.screens.unsaved_quit import UnsavedQuitScreen

        if isinstance(self.screen, UnsavedQuitScreen):
            self.screen.dismiss("quit")  # ctrl+q on the question itself: quit anyway (the copy is written)
            return
        if self._final_save():
            self._quit_saved()
            return
        copy = self._emergency_copy()
        cause = self.workspace.last_error.cause if self.workspace.last_error else "the save failed"
        where = f"An emergency copy is in {copy}." if copy else "No emergency copy could be written either."

        def answered(choice: str | None) -> None:
            if choice == "save_as":
                self.action_save_as(then_quit=True)
            elif choice == "quit":
                self._quit_unsaved(copy)

        question = f"{self.workspace.target.name} is not saved: {cause}. {where}"
        self.push_screen(UnsavedQuitScreen(question), answered)

    def _emergency_copy(self) -> Path | None:
        """The draft in the state folder (written again only when it changed since the last copy)."""
        revision = self.draft.revision
        if self._emergency is not None and self._emergency[0] == revision:
            return self._emergency[1]
        try:
            copy = self.workspace.emergency_copy()
        except StorytermError as error:
            self.notify(f"emergency copy failed too: {error}", severity="error", timeout=10)
            return None
        self._emergency = (revision, copy)
        if self.session is not None:
            self._session_call(self.session.set_draft, copy)  # the next start offers the copy
        return copy

    def _quit_unsaved(self, copy: Path | None) -> None:
        cause = self.workspace.last_error or "the save failed"
        where = f"an emergency copy is in {copy}" if copy else "no emergency copy could be written"
        self.exit_message = f"storyterm: not saved: {cause}; {where}"
        self.exit(1, return_code=1)

    def _terminate(self, signum: int = signal.SIGTERM) -> None:
        """SIGTERM / SIGHUP: save (else an emergency copy), then leave; exit 1 when the draft's file is behind."""
        code = 0
        if self._final_save():
            if self.session is not None:
                self._session_call(self.session.close)
        else:
            self._quit_unsaved(self._emergency_copy())
            code = 1
        if self.hard_exit_s is not None:
            # Textual's shutdown writes to the terminal and can block for ever once the terminal is gone (tmux
            # kill-session while a passage streams): after the save, make sure the process really ends.
            if signum == signal.SIGHUP:
                _print_exit_message(self.exit_message)
                os._exit(code)  # no terminal left to restore
            watchdog = threading.Timer(self.hard_exit_s, _hard_exit, args=(code, self.exit_message))
            watchdog.daemon = True
            watchdog.start()
        self.exit(code, return_code=code)

    def on_unmount(self) -> None:
        if self._stream is not None:
            self._stream.cancel()  # never leave a generation thread running behind a closed app
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)

    # -- screens ------------------------------------------------------------------------------------------------

    def action_help(self) -> None:
        from storyterm.tui.screens.help import HelpScreen

        self.push_screen(HelpScreen(self.key_table()))

    def key_table(self) -> list[tuple[str, str]]:
        """(keys, description) for every action, with the keys in force now (config overrides included)."""
        return key_table(self.config.keys)

    def action_focus_mode(self) -> None:
        self.query_one("#main", MainLayout).toggle()

    def action_switch_model(self) -> None:
        from storyterm.tui.screens.model_switch import ModelSwitchScreen

        if self.generating:
            self.notify("Stop the generation first (escape).", severity="warning")
            return
        self.push_screen(ModelSwitchScreen(self.spec), self._model_chosen)

    def _model_chosen(self, spec: ModelSpec | None) -> None:
        if spec is None:
            return
        self.model_loading = True
        self._show_load_state(f"loading {spec.source}…")
        self.notify(f"Loading {spec.source}…", timeout=3)
        self.load_model(spec)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        return system_commands(self, super().get_system_commands(screen))


def _same_path(a: Path | None, b: Path | None) -> bool:
    return a is not None and b is not None and a.resolve() == b.resolve()


def _draft_label(info: DraftInfo) -> str:
    if info.error:
        return f"{info.path.name} — unreadable: {info.error}"
    genre = f" · {info.genre}" if info.genre else ""
    return f"{info.title}{genre} · {info.words} words · {info.modified:%Y-%m-%d %H:%M} · {info.path.name}"


def _genre_summary(genres: list[str], tokens: bool = True) -> str:
    if not genres:
        return "free mode"
    return f"{len(genres)} genres" if tokens else f"{len(genres)} genres in words"


def debug_log_path() -> Path:
    """Where ``--debug`` writes the tracebacks of unexpected errors (a notification cannot hold one)."""
    import platformdirs

    return platformdirs.user_log_path("storyterm") / "debug.log"


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))
    except OSError:
        return False


def _print_exit_message(message: str | None) -> None:
    if message:
        try:
            print(message, file=sys.stderr, flush=True)
        except OSError:
            pass  # the terminal is gone


def _hard_exit(code: int, message: str | None) -> None:
    _print_exit_message(message)
    os._exit(code)


def _first_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def exit_code(app: App, returned: object) -> int:
    """The process's exit status: what the app exited with, and 1 after a crash (Textual sets return_code)."""
    if app.return_code not in (None, 0):
        return int(app.return_code)  # type: ignore[arg-type]
    return returned if isinstance(returned, int) else 0


def run_app(draft_path: Path | None, spec: ModelSpec, *, debug: bool = False) -> int:
    """Entry point for the CLI: runs the app in the terminal, returns the exit code. Without a terminal (a pipe,
    a cron job) it refuses in one line instead of writing escape codes nobody reads."""
    if not all(stream is not None and stream.isatty() for stream in (sys.stdin, sys.stdout)):
        raise StorytermError("the editor needs a terminal (standard input and output are not one); "
                             "use `storyterm generate` in pipes and scripts")
    from storyterm.story.recent import draft_to_open, last_draft_record

    record = last_draft_record()
    # Reopen what the writer was working on (ctrl+n starts a new one) unless another window has it open.
    draft_path, notice = draft_to_open(draft_path, record)
    app = StorytermApp(draft_path, spec, handle_signals=True, use_session=True, debug=debug,
                       last_draft_record=record, notices=[notice] if notice else [])
    app.hard_exit_s = 3.0
    returned = app.run()
    code = exit_code(app, returned)
    _print_exit_message(app.exit_message)
    if app.loading_threads:
        # A model load cannot be interrupted and the interpreter would wait for it at exit; everything is saved.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
