"""What the model will read for the next passage: the prompt's parts in order (header, memory, lorebook entries,
story, author's note), each with its token count, then what was trimmed away and any warning. Every text is shown
literally (never as markup)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

KIND_NAMES = {"header": "Header", "memory": "Memory", "lorebook": "Lorebook", "story": "Story",
              "note": "Author's note", "closing": "Instruct request (end)"}


@dataclass(frozen=True)
class ViewedPart:
    kind: str  # prompt_builder's part kinds: header, memory, lorebook, story, note, closing
    label: str
    tokens: int
    text: str


@dataclass(frozen=True)
class ContextView:
    parts: tuple[ViewedPart, ...]
    prompt_tokens: int
    window: int
    passage_tokens: int  # kept free for the passage
    left_out: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def part_title(part: ViewedPart) -> str:
    name = KIND_NAMES.get(part.kind, part.kind)
    if part.kind == "lorebook":
        name = f"{name}: {part.label}"
    elif part.kind == "story" and part.label != "story":
        name = f"Story ({part.label.removeprefix('story ')})"
    elif part.kind == "header" and part.label != "header":
        name = f"Header ({part.label})"
    return f"{name} — {part.tokens} token{'s' if part.tokens != 1 else ''}"


def summary(view: ContextView) -> str:
    text = f"{view.prompt_tokens} of {view.window} tokens; {view.passage_tokens} kept free for the passage."
    unused = view.window - view.passage_tokens - view.prompt_tokens
    if unused > 0 and any(line.startswith("story:") for line in view.left_out):
        text += (f" {unused} more are free because the story's window starts at a sentence with room to grow: the "
                 "next passages reuse what the model has read (smart context).")
    return text


class ContextViewerScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "close", "Close", show=False)]

    def __init__(self, view: ContextView, close_keys: str = "") -> None:
        super().__init__()
        self.view = view
        if close_keys:
            self._bindings.bind(close_keys, "close", "Close", show=False)

    def compose(self) -> ComposeResult:
        view = self.view
        with Vertical(classes="dialog", id="context-dialog"):
            yield Label("What the model reads for the next passage", classes="dialog-title")
            yield Static(summary(view), id="context-summary", markup=False)
            with VerticalScroll(id="context-parts"):
                for part in view.parts:
                    yield Static(part_title(part), classes=f"context-part-title context-{part.kind}", markup=False)
                    yield Static(part.text.strip("\n") or " ", classes="context-part-text", markup=False)
                if view.left_out or view.warnings:
                    yield Static("Trimmed", classes="context-part-title context-trimmed", markup=False)
                    for line in (*view.left_out, *view.warnings):
                        yield Static(f"• {line}", classes="context-part-text", markup=False)
                else:
                    yield Static("Nothing trimmed: everything fits.", classes="context-part-title", markup=False)
            yield Static("Escape closes. Up/down and page keys scroll.", classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one("#context-parts", VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)
