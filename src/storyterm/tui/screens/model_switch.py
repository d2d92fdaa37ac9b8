"""F2: choose another model (built-in, a local directory, a .gguf file or a hub id), device and dtype."""

from __future__ import annotations

import re

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Select

from storyterm.engine.devices import DTYPE_CHOICES
from storyterm.engine.loading import BUILTIN, ModelSpec

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = DTYPE_CHOICES


class ModelSwitchScreen(ModalScreen[ModelSpec | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, current: ModelSpec) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        builtin = self.current.source == BUILTIN
        with Vertical(classes="dialog", id="model-dialog"):
            yield Label("Switch model", classes="dialog-title")
            with RadioSet(id="source-kind"):
                yield RadioButton("Built-in model", value=builtin, id="kind-builtin")
                yield RadioButton("Local directory, .gguf file or hub id", value=not builtin, id="kind-other")
            yield Input(
                "" if builtin else self.current.source,
                placeholder="/path/to/checkpoint  or  model.gguf  or  user/model",
                id="source",  # never disabled: tab always reaches it, and typing in it picks "Local directory"
                compact=True,
            )
            with Horizontal(classes="dialog-row"):
                yield Label("Device")
                yield Select([(d, d) for d in DEVICES], value=self._pick(self.current.device, DEVICES),
                             allow_blank=False, id="device", compact=True)
                yield Label("Dtype")
                yield Select([(d, d) for d in DTYPES], value=self._pick(self.current.dtype, DTYPES),
                             allow_blank=False, id="dtype", compact=True)
            yield Label("", id="model-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Load", variant="primary", id="load")
                yield Button("Cancel", id="cancel")

    @staticmethod
    def _pick(value: str, choices: tuple[str, ...]) -> str:
        return value if value in choices else "auto"

    @on(RadioSet.Changed, "#source-kind")
    def _kind_changed(self, event: RadioSet.Changed) -> None:
        if event.pressed.id == "kind-other":
            self.query_one("#source", Input).focus()

    @on(Input.Changed, "#source")
    def _source_typed(self, event: Input.Changed) -> None:
        if event.value.strip():
            self.query_one("#kind-other", RadioButton).value = True

    @on(Input.Submitted, "#source")
    def _submitted(self) -> None:
        self._load()

    @on(Button.Pressed, "#load")
    def _load(self) -> None:
        builtin = self.query_one("#kind-builtin", RadioButton).value
        source = BUILTIN if builtin else self.query_one("#source", Input).value.strip()
        if not source:
            self.query_one("#model-error", Label).update(
                "Type a directory, a .gguf file or a hub id, or pick the built-in model.")
            return
        device = str(self.query_one("#device", Select).value)
        dtype = str(self.query_one("#dtype", Select).value)
        self.dismiss(ModelSpec(source=source, device=device, dtype=dtype, allow_pickle=self.current.allow_pickle))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


# The engine's messages name command-line flags; in the editor the same choice is made in this dialog.
_CLI_HINTS = [
    (r"use --model builtin or --model with a local checkpoint directory",
     "choose the built-in model or a local checkpoint directory (F2)"),
    (r"pass --model with a local checkpoint directory or a cached hub id",
     "choose a local checkpoint directory or a cached hub id (F2)"),
    (r"--model needs a checkpoint directory", "the model must be a checkpoint directory"),
    (r"use --(device|dtype) (\S+)", r"choose \1 \2 (F2)"),
    (r"pass --allow-pickle if you trust it", "start storyterm with --allow-pickle if you trust it"),
]


def for_editor(message: str) -> str:
    """An engine error as an editor user can act on it: the F2 dialog instead of --model/--device/--dtype."""
    for pattern, replacement in _CLI_HINTS:
        message = re.sub(pattern, replacement, message)
    return message
