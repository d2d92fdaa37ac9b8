"""Passage boundaries in the editor: starters end cleanly, a blank line starts a paragraph, no empty alternative,
and the "End at sentence" switch."""

from __future__ import annotations

import re

import pytest
import torch
from textual.widgets import OptionList, Switch

from storyterm.tui.app import StorytermApp
from tests.tui.test_app_loop import APP_SIZE, settle, type_and_generate


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


async def test_every_starter_of_the_genre_then_ctrl_g_starts_a_new_word(make_app) -> None:
    app: StorytermApp = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        starters = app.query_one("#starters", OptionList)
        assert starters.option_count >= 3
        for index in range(starters.option_count):
            starters.highlighted = index
            await pilot.pause()
            starter = app.picker.highlighted_starter
            await pilot.press("ctrl+g")
            await settle(app, pilot)
            assert app.draft.text == starter + " "  # the starter ends cleanly
            passage = app.draft.pending.text
            assert passage.strip() and not passage[0].isspace(), passage
            story = app.draft.text_with_pending
            assert words(story)[: len(words(starter))] == words(starter), story
            assert app.editor.text == story
            await pilot.press("escape")  # dismiss the passage and empty the story for the next starter
            app.draft.set_text("", coalesce=False)
            app._refresh_editor()
            await pilot.pause()


async def test_a_story_ending_with_a_blank_line_gets_a_new_paragraph(make_app) -> None:
    app: StorytermApp = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "The ghost screams.")
        await pilot.press("escape")  # dismiss the pending passage
        await pilot.press("enter", "enter")
        await pilot.press("ctrl+g")
        await settle(app, pilot)
        assert app.draft.text == "The ghost screams.\n\n"
        passage = app.draft.pending.text
        assert re.match(r"[\w\"'“‘(\[]", passage), passage  # a word, never ". At the summer…"


async def test_a_story_ending_with_a_space_never_dead_ends(make_app, tiny_loaded, monkeypatch) -> None:
    """A model that ends at once after a trailing space (the issue: every later ctrl+g said "no text")."""
    space = tiny_loaded.tokenizer.convert_tokens_to_ids("Ġ")
    eos = tiny_loaded.tokenizer.eos_token_id
    original = tiny_loaded.model.forward

    def forward(*args, **kwargs):
        out = original(*args, **kwargs)
        ends_with_space = kwargs["input_ids"][:, -1] == space
        out.logits[ends_with_space, -1, eos] = 1e4
        return out

    monkeypatch.setattr(tiny_loaded.model, "forward", forward)
    app: StorytermApp = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        for _ in range(3):
            await type_and_generate(app, pilot, "It ends. ")
            assert app.draft.pending is not None and app.draft.pending.text.strip()
            await pilot.press("tab")
        assert "produced no text" not in " ".join(str(n.message) for n in app._notifications)


async def test_alternatives_are_never_empty(make_app, tiny_loaded, monkeypatch) -> None:
    bias = torch.zeros(tiny_loaded.model.lm_head.out_features)
    bias[tiny_loaded.tokenizer.eos_token_id] = 1e4  # a model that would rather stop at every step
    monkeypatch.setattr(tiny_loaded.model.lm_head, "bias", torch.nn.Parameter(bias, requires_grad=False))
    app: StorytermApp = make_app(settings_toml="max_new_tokens = 12\nseed = 3\nnum_alternatives = 3\n")
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "The end.")
        alternatives = app.draft.alternatives()
        assert len(alternatives) == 3
        assert all(p.text.strip() for p in alternatives)


@pytest.mark.parametrize("trim", [True, False])
async def test_the_end_at_sentence_switch(make_app, trim: bool) -> None:
    app: StorytermApp = make_app(settings_toml="max_new_tokens = 16\nseed = 3\n")
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        switch = app.query_one("#trim_sentences", Switch)
        assert switch.value is True and app.draft.settings.trim_sentences
        if not trim:
            switch.value = False
            await pilot.pause()
            assert app.draft.settings.trim_sentences is False
        results = []
        original = app.controller.record_result

        def record(request, result):
            results.append(result)
            original(request, result)

        app.controller.record_result = record
        await type_and_generate(app, pilot, "She runs.")
        ending = results[-1].endings[0]
        if trim:
            assert ending in ("sentence", "trimmed", "word", "end-of-text")
        else:
            assert ending in ("length", "end-of-text")
            assert results[-1].stats.new_tokens <= 16


async def test_the_writer_s_half_written_word_may_be_finished_in_the_editor(make_app, tiny_loaded) -> None:
    """With a word list, "The man tav" (no word, begins "tavern") may go on with letters: the editor shows the
    word finished, and tab accepts exactly that text. The seed is one whose passage does go on with letters."""
    from dataclasses import replace

    from storyterm.engine.generation import GenerationRequest, StoryEngine
    from storyterm.engine.settings import SamplerSettings
    from tests.tui.conftest import shared_loader

    with_words = replace(tiny_loaded, known_words=lambda: frozenset({"the", "man", "tavern"}))
    story = "The man tav"
    engine = StoryEngine(with_words)
    seed = next(s for s in range(40) if engine.generate(GenerationRequest("drama", story, settings=SamplerSettings(
        max_new_tokens=8, seed=s, temperature=1.5, word_guard=False, trim_sentences=False))).text[:1].isalpha())
    app: StorytermApp = make_app(loader=shared_loader(with_words), settings_toml=(
        f"max_new_tokens = 8\nseed = {seed}\ntemperature = 1.5\nword_guard = false\ntrim_sentences = false\n"))
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        app.picker.query_one("#genres").highlighted = app.loaded.genres.index("drama")
        await pilot.pause()
        await type_and_generate(app, pilot, story)
        passage = app.draft.pending.text
        assert passage[:1].isalpha(), passage  # the word goes on, no space put in
        assert app.editor.text == story + passage
        await pilot.press("tab")
        await pilot.pause()
        assert app.draft.text == story + passage


async def test_a_half_written_word_is_finished_in_the_editor(make_app, tiny_loaded, monkeypatch) -> None:
    """A model without a word list heals the writer's unfinished last word: the editor shows the story once and the
    passage goes straight on with the word (engine/test_token_healing.py has the rule)."""
    from storyterm.engine.generation import StoryEngine
    from tests.engine.test_passage import script_model
    from tests.engine.test_token_healing import half_written

    engine = StoryEngine(tiny_loaded)
    story, _word, healed = half_written(engine, tiny_loaded.genres[0] if tiny_loaded.genres else None)
    surfaces = engine._surfaces().surfaces
    longer = max((i for i, s in enumerate(surfaces) if s.startswith(healed) and s != healed),
                 key=lambda i: len(surfaces[i]))
    dot = surfaces.index(".")
    written: list[int] = []

    def model_wants(_length: int, _last: int) -> int:  # the longer token first, then full stops
        written.append(1)
        return longer if len(written) == 1 else dot

    app: StorytermApp = make_app(settings_toml="max_new_tokens = 4\nseed = 3\ntrim_sentences = false\n")
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        script_model(tiny_loaded, monkeypatch, model_wants)
        await type_and_generate(app, pilot, story)
        monkeypatch.undo()
        passage = app.draft.pending.text
        assert passage.startswith(surfaces[longer][len(healed):] + "."), passage  # the word goes on, once
        assert app.draft.text == story and app.editor.text == story + passage
        tokens = app.draft.pending.token_infos()
        assert tokens and "".join(token.text for token in tokens) == passage  # the probability view lines up
