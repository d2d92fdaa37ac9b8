"""The storyterm Textual app: composition, bindings and the wiring between widgets, screens and the loop.

The co-writing loop (model, generate, stream, accept, alternatives, undo) is ``tui/controller.py`` and has no
Textual in it; the app is its view (``LoopView``). The story and its alternatives live in a
``storyterm.story.Draft``, its file in a ``Workspace``. Mixins hold the app's other jobs, one module each:
``TokenView`` (probability view, token swaps), ``ModelLoading`` (load and switch models), ``PanelEvents`` (the
side panels' messages), ``StatusLine`` (what the status bar shows), ``DraftFiles`` (save, open, new),
``DraftActions`` (rename, trash, export) and ``Quitting`` (crash recovery, quit, signals). torch and transformers
are imported only inside the load worker, so the first frame never waits for them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Header, Input, TextArea
from textual.worker import get_current_worker

from storyterm.config import DEFAULT_KEYS, load_config
from storyterm.engine.errors import StorytermError
from storyterm.story import Draft, default_drafts_dir
from storyterm.story.autosave import Autosaver
from storyterm.story.session import Session
from storyterm.story.workspace import Workspace
from storyterm.tui.controller import Choices, LoopState, StoryController
from storyterm.tui.context_actions import ContextActions
from storyterm.tui.draft_actions import DraftActions
from storyterm.tui.draft_files import DraftFiles
from storyterm.tui.keymap import BY_NAME, STORY_ACTIONS, build_bindings, key_table, system_commands
from storyterm.tui.model_loading import LoadFinished, LoadProgress, ModelLoading, debug_log_path, first_line
from storyterm.tui.panel_events import PanelEvents
from storyterm.tui.status_line import StatusLine
from storyterm.tui.story_tree_actions import StoryTreeActions
from storyterm.tui.token_view import TokenView
from storyterm.tui.model_modes import instruct_on
from storyterm.tui.quitting import Quitting, exit_code, print_exit_message
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

__all__ = ["StorytermApp", "debug_log_path", "exit_code", "run_app"]

AUTOSAVE_TICK_S = 0.25
WidgetT = TypeVar("WidgetT", bound=Widget)
CONTEXT_USAGE_DELAY_S = 0.4


class StorytermApp(ContextActions, TokenView, ModelLoading, PanelEvents, StatusLine, DraftFiles, DraftActions,
                   StoryTreeActions, Quitting, App[int]):
    CSS_PATH = [Path(__file__).parent / "app.tcss", Path(__file__).parent / "dialogs.tcss"]
    TITLE = "storyterm"
    BINDINGS = build_bindings(DEFAULT_KEYS)
    # Screen classes that let the side panels shrink before focus mode hides them (app.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (FOCUS_MODE_BELOW, "-medium"), (120, "-wide")]

    LoadProgress = LoadProgress
    LoadFinished = LoadFinished

    class PendingPiece(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

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

        self._loader = loader
        self._engine_factory = engine_factory
        self.config_path = config_path
        self.drafts_dir = drafts_dir or default_drafts_dir()
        self.handle_signals = handle_signals
        self.debug_mode = debug
        self.config, self._config_warnings = load_config(config_path)
        self._config_warnings.extend(notices)  # shown as warnings once the editor is up
        self.set_keymap(self.config.keymap_overrides())
        if self.config.theme:
            try:
                self.theme = self.config.theme
            except Exception:  # noqa: BLE001 - an unknown theme name in the config is not worth a crash
                self._config_warnings.append(f"unknown theme {self.config.theme!r} ignored")

        self.use_session = use_session
        self.session: Session | None = None
        self._editor_ahead = False  # the editor holds typing the Draft has not seen yet (see sync_editor)
        self._widgets: dict[str, Widget] = {}  # see _mounted
        self._behind_editor_keys = False  # an action is running after the editor's queued keys (run_action)
        self._footer_state: LoopState | None = None  # the loop state the footer's keys were last checked in

        self.workspace, self._draft_error = Workspace.open(draft_path, self.drafts_dir, self._new_draft)
        self.controller = StoryController(self, lambda: self.workspace.draft, spec or ModelSpec())

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

    # The controller's model and run, under the names the rest of the app (and its tests) use.
    @property
    def spec(self) -> ModelSpec:
        return self.controller.spec

    @property
    def loaded(self) -> LoadedModel | None:
        return self.controller.loaded

    @property
    def engine(self) -> StoryEngine | None:
        return self.controller.engine

    @property
    def load_failed(self) -> str | None:
        return self.controller.load_failed

    @property
    def generating(self) -> bool:
        return self.controller.generating

    @property
    def instruct(self) -> bool:
        """Instruct mode: the loaded model has a chat template and the writer has not switched it off."""
        return instruct_on(self.loaded, self.config)

    def notify(self, message: str, *, title: str = "", severity: Any = "information", timeout: float | None = None,
               markup: bool = False) -> None:
        """Notifications quote titles, paths and errors: shown literally unless a caller asks for markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # -- layout -------------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="✎")
        with MainLayout(id="main"):
            yield GenrePicker(id="genre-picker")
            yield StoryEditor(editor_form(self.draft.text), id="editor")  # its placeholder: MainLayout's
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
        # Hold the main widgets from the first frame (see _mounted): a first lookup during shutdown would miss them.
        _ = (self.editor, self.status, self.picker, self.panel)
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
                self.notify(f"no crash-recovery marker: {first_line(error)}", severity="warning")
        self.controller.load_started("loading…")
        # Start loading after the first frame is painted: importing torch in the worker holds the GIL a lot.
        self.call_after_refresh(self.load_model, self.spec)

    @on(LoadProgress)
    def _load_progress(self, message: LoadProgress) -> None:
        self.controller.load_progress(message.text)

    @on(LoadFinished)
    def _load_finished_message(self, message: LoadFinished) -> None:
        self._load_finished(message)

    # -- the loop's view (tui/controller.py LoopView) -------------------------------------------------------------

    def choices(self) -> Choices:
        return Choices(
            genre=self.picker.genre,
            title=self.picker.title_text,
            starter=self.picker.highlighted_starter,
            instruct=self.instruct,
            word_genres=self.config.word_genres,
            settings_error=self.panel.error,
        )

    def show_draft(self) -> None:
        pending = self.draft.pending
        self.editor.show(self.draft.text, pending.text if pending else "")
        self.refresh_token_view()

    _refresh_editor = show_draft

    def run_started(self, story: str) -> None:
        self.editor.show(story, "")
        self.editor.move_cursor(self.editor.document.end)
        self.editor.set_generating(True)
        self.refresh_bindings()

    def consume(self, stream: GenerationStream, request: GenerationRequest) -> None:
        self._consume_stream(stream, request)

    def add_piece(self, text: str) -> None:
        self.editor.append_pending(text)

    def run_ended(self) -> None:
        self.editor.set_generating(False)
        self.refresh_bindings()

    def passage_accepted(self) -> None:
        self.editor.show(self.draft.text, "")
        self.editor.accept_pending()

    def story_changed(self) -> None:
        self._story_changed()

    def status_changed(self) -> None:
        self._update_status()

    # -- generation ---------------------------------------------------------------------------------------------

    def current_request(self) -> GenerationRequest:
        return self.controller.request(self.choices())

    def _start_stream(self, story: str | None = None) -> None:
        """A run from ``story`` (a token swap's: tui/token_view.py) without the generate checks."""
        self.controller.start(story)

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
            message = f"generation failed: {first_line(error)}{self._debug_traceback(error)}"
            self._post_from_thread(self.GenerationFinished(request, None, message))
            return
        self._post_from_thread(self.GenerationFinished(request, result, None))

    @on(PendingPiece)
    def _pending_piece(self, message: PendingPiece) -> None:
        self.controller.piece(message.text)

    @on(GenerationFinished)
    def _generation_finished(self, message: GenerationFinished) -> None:
        self.controller.finished(message.request, message.result, message.error)

    def action_generate(self) -> None:
        self.controller.generate()

    def action_regenerate(self) -> None:
        self.controller.regenerate()

    def action_extend(self) -> None:
        self.controller.extend()

    def action_stop(self) -> None:
        self.controller.stop()

    def action_accept(self, anywhere: bool = False) -> None:
        self.controller.accept()  # ``anywhere`` only matters to check_action (the palette passes True)

    def action_cycle(self, step: int) -> None:
        self.controller.cycle(step)

    def action_undo(self) -> None:
        self.controller.undo()

    def action_redo(self) -> None:
        self.controller.redo()

    @on(StoryEditor.UndoRequested)
    def _editor_undo(self) -> None:
        self.controller.undo()

    @on(StoryEditor.RedoRequested)
    def _editor_redo(self) -> None:
        self.controller.redo()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action not in BY_NAME:
            return True
        modal_open = isinstance(self.screen, ModalScreen)
        if modal_open and action not in ("quit",):
            return False  # let the modal have its keys (escape, tab, …)
        state = self.controller.state
        if action == "accept":
            # The key accepts only in the editor and only with something to accept; anywhere else tab moves
            # focus (None: the footer shows Accept greyed). The palette passes anywhere=True.
            shown = state is LoopState.PENDING and bool(self.editor.pending_text)  # not typed over
            if not (state is LoopState.STREAMING or shown):
                return False
            return True if parameters == (True,) or isinstance(self.focused, StoryEditor) else None
        if action == "stop":
            return state in (LoopState.STREAMING, LoopState.PENDING)
        if action in ("undo", "redo"):
            # Inputs and the memory field keep their own undo; elsewhere undo goes through the Draft.
            focused = self.focused
            if focused is not None and not isinstance(focused, StoryEditor) and isinstance(focused, (TextArea, Input)):
                return False
        if state is LoopState.STREAMING and action in STORY_ACTIONS:
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
        if self.controller.state is not self._footer_state:  # the footer's keys follow the loop (Accept, Stop)
            self._footer_state = self.controller.state
            self.refresh_bindings()
        self._update_status()
        self._schedule_context_usage(CONTEXT_USAGE_DELAY_S)
        self.refresh_token_view()

    def on_unmount(self) -> None:
        self.controller.cancel()  # never leave a generation thread running behind a closed app
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

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        return system_commands(self, super().get_system_commands(screen))


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
    print_exit_message(app.exit_message)
    if app.loading_threads:
        # A model load cannot be interrupted and the interpreter would wait for it at exit; everything is saved.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
