"""One line under the editor: model, device, dtype, load state, last run's speed, context used, draft state."""

from __future__ import annotations

from dataclasses import dataclass, replace

from rich.text import Text
from textual.widgets import Static


@dataclass(frozen=True)
class StatusInfo:
    model: str = "—"
    device: str = "—"
    dtype: str = "—"
    load_state: str = "loading"          # loading | ready | failed | generating | waiting for model
    tokens_per_second: float | None = None
    time_to_first_token_s: float | None = None
    context_used: int | None = None
    context_window: int | None = None
    draft_name: str = "untitled"
    saved: bool = True
    alternative: tuple[int, int] | None = None   # (index + 1, count) of the pending passage


class StatusBar(Static):
    def __init__(self, **kwargs) -> None:
        super().__init__("", markup=False, **kwargs)
        self.info = StatusInfo()
        self._render_info()

    def set(self, **changes: object) -> None:
        info = replace(self.info, **changes)
        if info != self.info:
            self.info = info
            self._render_info()

    def _render_info(self) -> None:
        info = self.info
        speed = f"{info.tokens_per_second:.1f} tok/s" if info.tokens_per_second is not None else "— tok/s"
        ttft = (
            f"TTFT {info.time_to_first_token_s * 1000:.0f} ms"
            if info.time_to_first_token_s is not None
            else "TTFT —"
        )
        context = (
            f"ctx {info.context_used} / {info.context_window}"
            if info.context_used is not None and info.context_window
            else "ctx —"
        )
        parts: list[str | tuple[str, str]] = [
            (info.model, "bold"), f" {info.device} {info.dtype}", " │ ", info.load_state, " │ ",
            f"{speed} {ttft}", " │ ", context,
        ]
        if info.alternative is not None:
            parts += [" │ ", f"alt {info.alternative[0]}/{info.alternative[1]}"]
        parts += [" │ ", info.draft_name, ("" if info.saved else " ●", "bold")]
        self.update(Text.assemble(*parts, no_wrap=True, overflow="ellipsis"))
