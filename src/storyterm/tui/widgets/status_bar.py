"""One line under the editor: model, device, dtype, load state, genre, words, last run's speed, context used,
draft state. Display only: the app hands over a whole ``StatusInfo`` and never reads it back. A narrow bar drops
the least needed parts first (device, TTFT, speed…), never the load state."""

from __future__ import annotations

from dataclasses import dataclass

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
    genre: str | None = None                     # None: free mode
    mode: str = ""                               # instruct | in words (genre sentence) | "" (genre tokens)
    words: int = 0


class StatusBar(Static):
    def __init__(self, **kwargs) -> None:
        super().__init__("", markup=False, **kwargs)
        self.info = StatusInfo()
        self._render_info()

    def show(self, info: StatusInfo) -> None:
        """Display ``info`` (the app builds it from the loop's state; nothing here is ever read back)."""
        if info != self.info:
            self.info = info
            self._render_info()

    def on_resize(self) -> None:
        self._render_info()

    def _render_info(self) -> None:
        info = self.info
        speed = f"{info.tokens_per_second:.1f} tok/s" if info.tokens_per_second is not None else "— tok/s"
        ttft = f"TTFT {info.time_to_first_token_s * 1000:.0f} ms" if info.time_to_first_token_s is not None else ""
        context = (
            f"ctx {info.context_used} / {info.context_window}"
            if info.context_used is not None and info.context_window
            else "ctx —"
        )
        draft = Text.assemble(info.draft_name, ("" if info.saved else " ●", "bold"))
        # (priority, segment, glue before it): the highest numbers go first when the bar is too narrow.
        segments: list[tuple[int, Text, str]] = [
            (5, Text.assemble((info.model, "bold")), ""),
            (9, Text(f"{info.device} {info.dtype}"), " "),
            (0, Text(info.load_state), SEPARATOR),
            (2, Text(info.genre or "free mode"), SEPARATOR),
            (2, Text(info.mode), SEPARATOR),
            (4, Text(f"{info.words} words"), SEPARATOR),
            (7, Text(speed), SEPARATOR),
            (10, Text(ttft), " "),
            (6, Text(context), SEPARATOR),
            (3, Text(f"alt {info.alternative[0]}/{info.alternative[1]}" if info.alternative else ""), SEPARATOR),
            (1, draft, SEPARATOR),
        ]
        segments = [segment for segment in segments if segment[1].plain]
        room = self.content_region.width or 200
        while len(segments) > 1 and _width(segments) > room:
            segments.remove(max(segments, key=lambda segment: segment[0]))
        line = Text(no_wrap=True, overflow="ellipsis")
        for index, (_priority, text, glue) in enumerate(segments):
            line.append(glue if index else "")
            line.append_text(text)
        self.update(line)


SEPARATOR = " │ "


def _width(segments: list[tuple[int, Text, str]]) -> int:
    return sum(text.cell_len + len(glue) for _p, text, glue in segments) - len(segments[0][2])
