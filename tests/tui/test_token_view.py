"""The probability view and token swaps through the keyboard, at 80×24 (the smallest supported terminal)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import OptionList

from storyterm.story import load_draft
from storyterm.tui.screens.candidates import CandidatesScreen
from storyterm.tui.widgets.editor import SHADES

from .test_app_loop import settle, wait_until

SMALL = (80, 24)
SAMPLED = "max_new_tokens = 16\nseed = 3\ntemperature = 1.5\n"


async def test_f6_toggles_the_tints_on_generated_words(make_app) -> None:
    app = make_app(settings_toml=SAMPLED)
    async with app.run_test(size=SMALL) as pilot:
        await settle(app, pilot)
        await pilot.press(*"The ghost", "ctrl+g")
        await settle(app, pilot)
        pending = app.draft.pending
        tokens = pending.token_infos()
        assert tokens and "".join(t.text for t in tokens) == pending.text
        assert app.editor._shading == {}
        await pilot.press("f6")
        assert app.probability_view
        shaded = [s for row in app.editor._shading.values() for s in row]
        assert shaded and {s[2] for s in shaded} <= set(SHADES)
        # a random model's words are mostly unlikely: the pending passage is tinted, the writer's words are not
        start_row, start_col = app.editor.pending_start
        assert all((row, end) > (start_row, start_col) for row, spans in app.editor._shading.items()
                   for _, end, _ in spans)
        line = app.editor.get_line(start_row)
        assert any(span.style and getattr(span.style, "bgcolor", None) for span in line.spans)
        await pilot.press("tab")  # accepted: still tinted (it lies unchanged in the story)
        assert app.editor._shading
        await pilot.press("f6")
        assert not app.probability_view and app.editor._shading == {}


async def test_candidates_on_a_token_swap_regenerates_as_a_sibling_and_undo_returns(make_app, tmp_path: Path) -> None:
    app = make_app(settings_toml=SAMPLED)
    async with app.run_test(size=SMALL, notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press(*"The ghost", "ctrl+g")
        await settle(app, pilot)
        source = app.draft.pending
        app.editor.move_cursor(app.editor.document.get_location_from_index(len(app.draft.text) + 4))
        _, index, tokens = app._token_at_cursor()
        assert tokens == source.token_infos()
        app.notify("An information toast")
        app.notify("A warning toast", severity="warning")
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert isinstance(app.screen, CandidatesScreen)
        shown = [str(t.render()) for t in app.screen.query("Toast") if t.display]
        assert shown == ["A warning toast"]  # an information toast waits: it would cover the list
        options = app.screen.query_one(OptionList)
        assert options.option_count == 8
        choice = next(i for i, c in enumerate(tokens[index].top) if c.text != tokens[index].text and c.text.strip())
        for _ in range(choice):
            await pilot.press("down")
        await pilot.press("enter")
        await settle(app, pilot)
        swapped = app.draft.pending
        candidate = tokens[index].top[choice]
        prefix = "".join(t.text for t in tokens[:index])
        assert swapped.id != source.id
        assert swapped.text.startswith(prefix + candidate.text)
        assert swapped.branch == {"from": source.id, "token": index}
        assert [p.id for p in app.draft.alternatives()] == [source.id, swapped.id]
        assert app.editor.text == app.draft.text + swapped.text
        await pilot.press("ctrl+z")
        assert app.draft.pending.id == source.id and app.editor.text == app.draft.text + source.text
        await pilot.press("ctrl+s")
        await pilot.pause()
    again = load_draft(app.draft_path)
    assert again.passage(swapped.id).branch == {"from": source.id, "token": index}
    assert again.passage(swapped.id).token_infos()


async def test_escape_stops_a_swap_and_keeps_what_was_written(make_app, tiny_loaded) -> None:
    from .conftest import StepGate

    app = make_app(settings_toml="max_new_tokens = 30\nseed = 3\n")
    async with app.run_test(size=SMALL) as pilot:
        await settle(app, pilot)
        await pilot.press(*"The ghost", "ctrl+g")
        await settle(app, pilot)
        source = app.draft.pending
        app.editor.move_cursor(app.editor.document.get_location_from_index(len(app.draft.text) + 2))
        _, index, tokens = app._token_at_cursor()
        gate = StepGate(tiny_loaded.model)
        try:
            await pilot.press("ctrl+l")
            await pilot.pause()
            choice = next(i for i, c in enumerate(tokens[index].top) if c.text != tokens[index].text)
            for _ in range(choice):
                await pilot.press("down")
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.generating and gate.calls > 0)
            await pilot.press("escape")
            gate.release(100)
            await settle(app, pilot)
        finally:
            gate.close()
        swapped = app.draft.pending
        head = "".join(t.text for t in tokens[:index]) + tokens[index].top[choice].text
        assert swapped.id != source.id and swapped.stopped
        assert swapped.text.startswith(head.rstrip()) and swapped.branch["token"] == index


async def test_candidates_away_from_generated_text_explains(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settle(app, pilot)
        await pilot.press(*"Typed by hand", "ctrl+l")
        await pilot.pause()
        assert not isinstance(app.screen, CandidatesScreen)
        assert any("generated word" in str(n.message) for n in app._notifications)


async def test_probabilities_are_left_out_when_holding_them_would_take_too_much_memory(make_app, monkeypatch) -> None:
    from dataclasses import replace

    from storyterm.tui import token_view

    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await settle(app, pilot)
        request = app.current_request()
        assert app.with_token_probs(request).token_probs == token_view.TOKEN_CANDIDATES
        big = replace(request, settings=replace(request.settings, num_alternatives=8, max_new_tokens=100))
        monkeypatch.setattr(token_view, "HELD_SCORES_LIMIT", 2 * 4 * len(app.loaded.tokenizer) * 8 * 100)
        assert app.with_token_probs(big).token_probs == 0
        assert app.with_token_probs(request).token_probs == token_view.TOKEN_CANDIDATES
