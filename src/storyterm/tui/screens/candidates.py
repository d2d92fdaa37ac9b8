"""The candidates for one generated token: what the model could have written there, with percentages.

Enter on a candidate answers it (the app swaps the token and regenerates the rest of the passage from there);
escape answers None. The token that was written is marked. Every text is shown literally (tokens are user-visible
text: "[", "\\n" and spaces must stay what they are)."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from storyterm.engine.token_probs import Candidate, TokenInfo


def visible(text: str) -> str:
    """A token's text with its spaces and line breaks made visible ("␣dog", "↵")."""
    return text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅"


def percent(p: float) -> str:
    if p <= 0:
        return "0 %"
    if p < 0.001:
        return "<0.1 %"
    return f"{p * 100:.1f} %" if p < 0.995 else f"{p * 100:.0f} %"


def candidate_line(candidate: Candidate, written: bool) -> Text:
    line = Text()
    # "cut": the sampling settings (top-k, top-p, min-p…) left it no chance; it can still be chosen here.
    chance = "cut" if candidate.prob <= 0 < candidate.raw_prob else percent(candidate.prob)
    line.append(f"{chance:>7}", style="bold")
    line.append(f"  model {percent(candidate.raw_prob):>7}  ", style="dim")
    line.append(visible(candidate.text))
    if written:
        line.append("   ← written", style="italic")
    return line


class CandidatesScreen(ModalScreen[Candidate | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, token: TokenInfo, *, can_swap: bool = True) -> None:
        super().__init__()
        self.token = token
        self.can_swap = can_swap
        self.choices = [c for c in token.top]

    def compose(self) -> ComposeResult:
        token = self.token
        title = Text("Token “")
        title.append(visible(token.text), style="bold")
        title.append("”")
        title.append(f" — {percent(token.prob)} under the settings, {percent(token.raw_prob)} for the model")
        with Vertical(classes="dialog", id="candidates-dialog"):
            yield Static(title, classes="dialog-title")
            if self.choices:
                written = next((i for i, c in enumerate(self.choices) if c.text == token.text), None)
                yield OptionList(*(Option(candidate_line(c, i == written), id=f"candidate-{i}")
                                   for i, c in enumerate(self.choices)), id="candidates-list", compact=True)
            else:
                yield Static("No candidates were kept for this token.", markup=False)
            hint = ("Enter: write this one instead and let the model rewrite the rest (a new alternative; undo "
                    "returns). Escape: close." if self.can_swap else
                    "Only the newest passage can be rewritten from a token. Escape: close.")
            yield Static("First figure: the chance under your sampling settings (cut: they left it none); model: "
                         "before them. " + hint,
                         classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        if self.choices:
            self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected, "#candidates-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        if not self.can_swap:
            self.notify("Only the newest passage can be rewritten from a token.", severity="warning")
            return
        self.dismiss(self.choices[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)
