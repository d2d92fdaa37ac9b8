"""Token probabilities in the editor: the probability view (generated text tinted by how likely each token was)
and the candidates of the token at the cursor, where choosing one swaps it and the model rewrites the rest.

A mixin of ``StorytermApp``. Every TUI generation asks the engine for its tokens' probabilities
(``TOKEN_CANDIDATES`` per token; benchmarks/bench_token_probs.py measures the cost) and the Draft keeps them with
the passage. A swap streams like any generation (escape stops it) and lands as a sibling of the passage it came
from (``Draft.add_swap``: one undo step). The hooks in app.py: ``with_token_probs`` (the request),
``open_stream`` (a swap's stream), ``record_swap`` (its result), ``refresh_token_view`` (after changes).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from storyterm.engine.errors import StorytermError
from storyterm.engine.swap import stream_swap
from storyterm.engine.token_probs import Candidate, TokenInfo, TokenSwap, tokens_at
from storyterm.tui.widgets.editor import SHADES, editor_form

if TYPE_CHECKING:
    from storyterm.engine.generation import GenerationRequest, GenerationResult
    from storyterm.story.draft import Passage
    from storyterm.tui.app import StorytermApp

    _Base = StorytermApp
else:
    _Base = object

TOKEN_CANDIDATES = 8  # candidates kept per generated token
HELD_SCORES_LIMIT = 1 << 30  # bytes: beyond this (8 alternatives of 500 tokens of a 50k vocabulary) no probabilities
# Tints by the token's probability under the sampling settings: under 1 %, under 10 %, under 30 % (SHADES order).
# Likelier tokens stay plain, so the unlikely ones stand out even in a small model's passages.
SHADE_BELOW = (0.01, 0.10, 0.30)


def shade_for(prob: float) -> str | None:
    for limit, shade in zip(SHADE_BELOW, SHADES):
        if prob < limit:
            return shade
    return None


def shading_spans(placed: list[tuple[int, tuple[TokenInfo, ...]]]) -> list[tuple[int, int, str]]:
    """(start, end, shade) document ranges for tokens placed at these offsets; neighbours of one shade merge."""
    spans: list[tuple[int, int, str]] = []
    for start, tokens in placed:
        position = start
        for token in tokens:
            end = position + len(token.text)
            shade = shade_for(token.prob)
            if shade is not None and end > position:
                if spans and spans[-1][1] == position and spans[-1][2] == shade:
                    spans[-1] = (spans[-1][0], end, shade)
                else:
                    spans.append((position, end, shade))
            position = end
    return spans


class TokenView(_Base):
    probability_view: bool = False
    _swap_job: tuple[TokenSwap, str] | None = None  # asked for; the next stream runs it
    _running_swap: tuple[TokenSwap, str] | None = None
    _token_cache: dict[str, tuple[str, tuple[TokenInfo, ...] | None]] | None = None

    # -- hooks for app.py ------------------------------------------------------------------------------------------

    def with_token_probs(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` asking for its tokens' probabilities, unless holding them while it runs would take more
        than HELD_SCORES_LIMIT (generate keeps two vocabulary-sized rows per token and alternative)."""
        settings = request.settings
        vocabulary = len(self.loaded.tokenizer) if self.loaded is not None else 0
        held = 2 * 4 * vocabulary * settings.num_alternatives * settings.max_new_tokens * 1.2
        return request if held > HELD_SCORES_LIMIT else replace(request, token_probs=TOKEN_CANDIDATES)

    def open_stream(self, request: GenerationRequest) -> Any:
        """The engine's stream for ``request``, or the swap's when one was asked for."""
        job, self._swap_job = self._swap_job, None
        self._running_swap = job
        assert self.engine is not None
        if job is None:
            return self.engine.stream(request)
        return stream_swap(self.engine, request, job[0])

    def record_swap(self, request: GenerationRequest, result: GenerationResult, model: str) -> bool:
        """Record a swap's result (True), or leave an ordinary generation to the caller (False)."""
        job, self._running_swap = self._running_swap, None
        if job is None:
            return False
        swap, source_id = job
        text = editor_form(result.text)
        if not text.strip():
            return True
        try:
            self.draft.add_swap(source_id, swap.index, text, tokens=result.tokens[0] if result.tokens else None,
                                genre=request.genre, settings=request.settings, seed=result.seed, model=model,
                                stopped=result.cancelled)
        except StorytermError as error:
            self.notify(str(error), title="Swap not kept", severity="error")
        return True

    def refresh_token_view(self) -> None:
        if not self.probability_view:
            self.editor.set_shading([])
            return
        placed = [(start, tokens) for start, passage in self.draft.placed_passages()
                  if (tokens := self._tokens_of(passage))]
        self.editor.set_shading(shading_spans(placed))

    # -- actions -----------------------------------------------------------------------------------------------

    def action_probability_view(self) -> None:
        self.probability_view = not self.probability_view
        self.refresh_token_view()
        if self.probability_view:
            has_tokens = any(self._tokens_of(p) for _, p in self.draft.placed_passages())
            hint = ("ctrl+l on a word lists what else the model could have written." if has_tokens
                    else "No passage here has probabilities yet: generate one.")
            self.notify("Probability view: the stronger the tint, the less likely the word was (a faint tint: "
                        f"under 30 %, stronger: under 10 %, strongest: under 1 %). {hint}", timeout=6)
        else:
            self.notify("Probability view off.", timeout=2)

    def action_token_candidates(self) -> None:
        if self.generating:
            return
        self.sync_editor()
        found = self._token_at_cursor()
        if found is None:
            self.notify("Put the cursor on a generated word (one written with probabilities) to see what else "
                        "the model could have written there.", timeout=5)
            return
        passage, index, tokens = found
        from storyterm.tui.screens.candidates import CandidatesScreen

        can_swap = self.draft.can_swap(passage.id)

        def chosen(candidate: Candidate | None) -> None:
            if candidate is not None:
                self._swap(passage, index, tokens, candidate)

        self.push_screen(CandidatesScreen(tokens[index], can_swap=can_swap), chosen)

    # -- helpers -----------------------------------------------------------------------------------------------

    def _swap(self, passage: Passage, index: int, tokens: tuple[TokenInfo, ...], candidate: Candidate) -> None:
        if self.generating or self.engine is None:
            self.notify("The model is not ready yet.", severity="warning")
            return
        try:
            swap = TokenSwap(passage.text, tokens, index, candidate)
        except StorytermError as error:
            self.notify(str(error), title="Cannot swap", severity="error")
            return
        pending = self.draft.pending
        story = self.draft.text
        if pending is None or pending.id != passage.id:  # the accepted passage at the end of the story
            story = story[: len(story) - len(passage.text)]
        self._swap_job = (swap, passage.id)
        self._start_stream(story=story)
        if not self.generating:  # refused (busy, bad settings): nothing was started
            self._swap_job = None

    def _tokens_of(self, passage: Passage) -> tuple[TokenInfo, ...] | None:
        if self._token_cache is None:
            self._token_cache = {}
        cached = self._token_cache.get(passage.id)
        if cached is None or cached[0] is not passage.text:
            cached = (passage.text, passage.token_infos())
            self._token_cache[passage.id] = cached
        return cached[1]

    def _token_at_cursor(self) -> tuple[Passage, int, tuple[TokenInfo, ...]] | None:
        editor = self.editor
        offset = editor.document.get_index_from_location(editor.cursor_location)
        for start, passage in self.draft.placed_passages():
            end = start + len(passage.text)
            if not start <= offset <= end:
                continue
            tokens = self._tokens_of(passage)
            if not tokens:
                continue
            index = tokens_at(tokens, offset - start)
            if index is None or not tokens[index].text.strip():  # past the end, or on a bare space
                index = tokens_at(tokens, max(offset - start - 1, 0))
            if index is not None:
                return passage, index, tokens
        return None
