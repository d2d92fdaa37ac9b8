"""Snapshots of the probability view (f6) and the candidates popup (ctrl+l), at 80×24 and 120×32.

The scripted engine writes the same words every run; the token probabilities are set on the pending passage here
(fixed figures), so the tints and percentages are the same every run."""

from __future__ import annotations

import re

from textual.pilot import Pilot

from storyterm.engine.token_probs import Candidate, TokenInfo
from storyterm.story.token_data import encode_tokens

from .test_snapshots import steady

PROBS = [0.9, 0.2, 0.05, 0.004, 0.6]


def fixed_tokens(text: str) -> tuple[TokenInfo, ...]:
    pieces = re.findall(r"\s*\S+", text)
    pieces[-1] += text[len("".join(pieces)):]
    return tuple(
        TokenInfo(-1, piece, PROBS[i % len(PROBS)], PROBS[i % len(PROBS)] * 0.8,
                  (Candidate(-1, piece, PROBS[i % len(PROBS)], PROBS[i % len(PROBS)] * 0.8),
                   Candidate(-1, " lantern", 0.0, 0.031), Candidate(-1, "[", 0.012, 0.01)))
        for i, piece in enumerate(pieces)
    )


async def generated_with_probabilities(pilot: Pilot) -> None:
    app = pilot.app
    await app.workers.wait_for_complete()
    await pilot.press(*"Luigi enters a haunted resort.")
    await pilot.press("ctrl+g")
    await app.workers.wait_for_complete()
    while app.generating or app.draft.pending is None:  # the finished message is handled on the app's loop
        await pilot.pause(0.02)
    pending = app.draft.pending
    pending.tokens = encode_tokens(fixed_tokens(pending.text))
    await pilot.press("f6")
    # No widget focused, so no cursor: whether the editor's cursor row was redrawn after it got focus depended on
    # the machine's load, and the tints are what this snapshot is for.
    app.set_focus(None)
    await steady(pilot)


def test_probability_view(snap_compare, make_app, scripted_engine) -> None:
    assert snap_compare(make_app(engine_factory=scripted_engine), terminal_size=(80, 24),
                        run_before=generated_with_probabilities)


def test_candidates_popup(snap_compare, make_app, scripted_engine) -> None:
    async def run_before(pilot: Pilot) -> None:
        await generated_with_probabilities(pilot)
        app = pilot.app
        app.editor.move_cursor(app.editor.document.get_location_from_index(len(app.draft.text) + 12))
        await pilot.press("ctrl+l")
        await pilot.pause()

    assert snap_compare(make_app(engine_factory=scripted_engine), terminal_size=(120, 32), run_before=run_before)
