"""The status bar's content: made whole from the controller, the draft and the workspace each time something
changes (the bar itself only displays, ``widgets/status_bar.py``), and the context gauge measured after a pause in
typing. A mixin of ``StorytermApp``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.css.query import NoMatches

from storyterm.engine.devices import dtype_name
from storyterm.tui.model_modes import mode_label
from storyterm.tui.widgets.status_bar import StatusInfo

if TYPE_CHECKING:
    from textual.timer import Timer

    from storyterm.tui.app import StorytermApp

    _Base = StorytermApp
else:
    _Base = object


class StatusLine(_Base):
    _context_timer: Timer | None = None

    def _update_status(self) -> None:
        """The status bar shows what the controller, the draft and the workspace say (it keeps no state)."""
        self._remember_draft_path()
        controller, loaded, draft = self.controller, self.loaded, self.draft
        try:
            status = self.status
        except NoMatches:
            return  # an autosave tick while the app is closing: the widgets are gone, the save is done
        stats = controller.last_stats
        count, index = draft.alternative_count, draft.alternative_index
        showing = index is not None and count > 1 and not controller.generating
        context_used, window = controller.context or (None, loaded.context_window if loaded else None)
        status.show(StatusInfo(
            model=loaded.name if loaded else self.spec.source,
            device=str(loaded.device) if loaded else self.spec.device,
            dtype=dtype_name(loaded.dtype) if loaded else self.spec.dtype,
            load_state=controller.activity,
            tokens_per_second=stats.tokens_per_second if stats else None,
            time_to_first_token_s=stats.time_to_first_token_s if stats else None,
            context_used=context_used,
            context_window=window,
            draft_name=self.draft_path.stem if self.draft_path else draft.title,
            saved=not self.autosaver.dirty or not self._worth_saving(),
            alternative=(index + 1, count) if showing else None,
            genre=draft.genre,
            mode=mode_label(loaded, self.picker.genre, self.instruct),
            words=draft.word_count,
        ))

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
            self.controller.measure_context(self.choices())
        except NoMatches:  # the app closed before this deferred call ran
            return
        self._update_status()
