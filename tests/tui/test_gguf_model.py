"""The editor with a GGUF model (llama.cpp): the passage streams into the editor piece by piece, genres are offered
in words, the status bar names the file's weight type, and the passage carries its tokens' probabilities."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyterm.engine.genres import DEFAULT_WORD_GENRES
from storyterm.engine.loading import ModelSpec
from storyterm.tui.app import StorytermApp
from storyterm.tui.widgets.editor import editor_form
from tests.tui.test_app_loop import settle, wait_until

pytestmark = pytest.mark.gguf  # .ci/run runs these again with llama-cpp-python installed

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'storyterm[gguf]')")

SIZE = (120, 32)


async def test_a_gguf_model_streams_into_the_editor(make_app, tiny_gguf: Path) -> None:
    pieces: list[str] = []

    def hook(message) -> None:
        if isinstance(message, StorytermApp.PendingPiece):
            pieces.append(message.text)

    app = make_app(spec=ModelSpec(str(tiny_gguf)), settings_toml="max_new_tokens = 30\ndo_sample = false\n")
    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await settle(app, pilot)
        await wait_until(pilot, lambda: app.engine is not None)
        assert app.loaded is not None and app.loaded.name == tiny_gguf.name
        assert str(app.picker.query_one("#genre-title").render()) == "Genre (in words)"
        assert app.status.info.dtype == "f32"
        # This file has no word list: the guard's switch does not pretend to work
        assert app.panel.query_one("#word_guard").disabled and app.panel.query_one("#word_guard-note").display
        genres = app.picker.query_one("#genres")
        genres.highlighted = list(DEFAULT_WORD_GENRES).index("horror")
        await pilot.pause()
        await pilot.press(*"The ghost")
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: not app.generating and app.draft.pending is not None)
        await settle(app, pilot)
        pending = app.draft.pending
        assert pending is not None and pending.text and pending.genre == "horror"
        assert len(pieces) >= 2, "the passage should stream in several pieces"
        # what streamed is the passage, before sentence trimming cut its unfinished end
        assert editor_form("".join(pieces)).strip().startswith(app.editor.pending_text.strip())
        assert app.editor.text == "The ghost" + app.editor.pending_text
        assert app.engine.prompt_text(app.current_request()).startswith("<BOS> This is a horror story. The ghost")
        assert app.status.info.tokens_per_second is not None
        await pilot.press("tab")
        await pilot.pause()
        assert app.draft.text == "The ghost" + pending.text
        assert pending.token_infos(), "the probability view and token swaps work on GGUF passages too"
