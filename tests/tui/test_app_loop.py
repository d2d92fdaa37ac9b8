"""The co-writing loop through the keyboard: generate, accept, regenerate, cycle, stop, undo, save/reopen."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from textual import events
from textual.pilot import Pilot

from storyterm.engine.loading import ModelSpec
from storyterm.story import load_draft
from storyterm.tui.app import StorytermApp
from storyterm.tui.widgets.editor import StoryEditor, editor_form

APP_SIZE = (120, 32)


async def settle(app: StorytermApp, pilot: Pilot) -> None:
    await pilot.pause()  # the model load starts after the first refresh: let it start before waiting for it
    await app.workers.wait_for_complete()
    await pilot.pause()


async def wait_until(pilot: Pilot, condition: Callable[[], object], timeout: float = 15.0) -> None:
    waited = 0.0
    while not condition():
        if waited > timeout:
            raise AssertionError("condition not reached")
        await pilot.pause(0.02)
        waited += 0.02


async def type_and_generate(app: StorytermApp, pilot: Pilot, text: str) -> None:
    """Type ``text`` into the editor, generate, and wait until the passage is done."""
    await pilot.press(*text)
    await pilot.press("ctrl+g")
    await settle(app, pilot)


async def test_prompt_generate_pieces_then_tab_accepts(make_app, tmp_path: Path) -> None:
    pieces: list[str] = []

    def hook(message) -> None:
        if isinstance(message, StorytermApp.PendingPiece):
            pieces.append(message.text)

    app = make_app(settings_toml="max_new_tokens = 40\nseed = 3\n")
    async with app.run_test(size=APP_SIZE, message_hook=hook) as pilot:
        await settle(app, pilot)
        assert isinstance(app.focused, StoryEditor)  # typing just works
        await pilot.press(*"The ghost")
        assert app.draft.text == "The ghost"
        await pilot.press("ctrl+g")
        await settle(app, pilot)
        pending = app.draft.pending
        assert pending is not None and pending.text
        assert len(pieces) >= 2, "the passage should stream in several pieces"
        assert editor_form("".join(pieces)).strip() in app.editor.pending_text
        assert app.editor.text == "The ghost" + app.editor.pending_text
        assert app.draft.text == "The ghost"  # pending is never story text before tab
        await pilot.press("tab")
        await pilot.pause()
        assert app.draft.pending is None
        assert app.draft.text == "The ghost" + pending.text
        assert app.editor.pending_text == ""
        assert app.editor.text == app.draft.text
        assert app.status.info.tokens_per_second is not None
        assert app.status.info.context_used is not None


async def test_regenerate_twice_gives_three_alternatives_that_cycle(make_app) -> None:
    app = make_app(settings_toml="max_new_tokens = 12\n")  # random seeds: three different passages
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press(*"Gotham")
        for key in ("ctrl+g", "ctrl+r", "ctrl+r"):
            await pilot.press(key)
            await settle(app, pilot)
        alternatives = app.draft.alternatives()
        assert len(alternatives) == 3
        assert app.status.info.alternative == (3, 3)
        seen = []
        for key in ("f8", "f8", "f8", "alt+right_square_bracket"):
            await pilot.press(key)
            await pilot.pause()
            assert app.draft.pending is not None
            seen.append(app.draft.pending.id)
            assert app.editor.text == "Gotham" + app.draft.pending.text
            assert app.draft.text == "Gotham"
        assert seen[:3] == [alternatives[0].id, alternatives[1].id, alternatives[2].id]
        assert seen[3] == alternatives[0].id  # wraps around
        await pilot.press("f7")
        await pilot.pause()
        assert app.draft.pending.id == alternatives[2].id


async def test_escape_mid_stream_stops_within_a_step_and_keeps_the_story(make_app, step_gate) -> None:
    app = make_app(settings_toml="max_new_tokens = 60\nseed = 3\n")
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press(*"In the mist,")
        await pilot.press("ctrl+g")
        for _ in range(60):  # one decode step at a time until something is on screen
            if app.editor.pending_text:
                break
            step_gate.release(1)
            await pilot.pause(0.05)
        assert app.generating and app.editor.pending_text
        assert app.editor.read_only  # no keystroke can land inside the streaming passage
        step_gate.mark_cancel()
        await pilot.press("escape")
        step_gate.release(50)
        await settle(app, pilot)
        assert not app.generating
        assert step_gate.calls - step_gate.calls_at_cancel <= 1, "stopped within one decode step"
        assert app.draft.text == "In the mist,"
        pending = app.draft.pending
        assert pending is not None and pending.stopped  # what streamed stays pending
        assert app.editor.text == "In the mist," + pending.text
        await pilot.press("escape")  # nothing runs now: escape dismisses
        await pilot.pause()
        assert app.draft.pending is None
        assert app.editor.text == "In the mist,"


async def test_second_generate_while_running_is_harmless(make_app, step_gate) -> None:
    app = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press(*"A zombie")
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: step_gate.calls >= 1)
        await pilot.press("ctrl+g", "ctrl+r", "ctrl+e")
        step_gate.release(500)
        await settle(app, pilot)
        assert len(app.draft.passages) == 1
        assert not [n for n in app._notifications if n.severity == "error"]
        assert app.draft.text == "A zombie"


async def test_undo_and_redo_cross_typing_generation_and_accept(make_app) -> None:
    app = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "Aliens")
        passage = app.draft.pending
        await pilot.press("tab")
        await pilot.pause()
        assert app.draft.text == "Aliens" + passage.text

        await pilot.press("ctrl+z")  # undo accept: the passage is pending again
        await pilot.pause()
        assert app.draft.text == "Aliens" and app.draft.pending.id == passage.id
        assert app.editor.text == "Aliens" + passage.text and app.editor.pending_text == passage.text
        await pilot.press("ctrl+z")  # undo generate: nothing pending, but the passage stays in the tree
        await pilot.pause()
        assert app.draft.pending is None and app.editor.text == "Aliens"
        assert passage.id in [p.id for p in app.draft.passages]
        await pilot.press("ctrl+z")  # undo typing
        await pilot.pause()
        assert app.editor.text == app.draft.text == ""

        for _ in range(3):
            await pilot.press("ctrl+y")
            await pilot.pause()
        assert app.draft.text == "Aliens" + passage.text
        assert app.editor.text == app.draft.text and app.editor.pending_text == ""


async def test_typing_over_a_pending_passage_dismisses_it(make_app) -> None:
    app = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "A ghost")
        assert app.draft.pending is not None
        await pilot.press("!")
        await pilot.pause()
        assert app.editor.pending_text == ""
        assert app.draft.pending is None
        assert app.draft.text == app.editor.text == "A ghost!"
        await pilot.press("f8")  # the dismissed alternative is still reachable? not at this new spot
        await pilot.pause()
        assert app.draft.text == "A ghost!"


async def test_extend_accepts_and_generates_the_next_passage(make_app) -> None:
    app = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "A satellite")
        first = app.draft.pending
        await pilot.press("ctrl+e")
        await settle(app, pilot)
        assert app.draft.text == "A satellite" + first.text
        assert app.draft.pending is not None and app.draft.pending.id != first.id


async def test_empty_story_generates_from_the_highlighted_starter(make_app) -> None:
    app = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await pilot.click("#starters")
        await pilot.press("down", "down")  # Spider-Man, Superman… (superhero is the first genre)
        starter = app.picker.highlighted_starter
        assert starter
        await pilot.press("ctrl+g")
        await settle(app, pilot)
        assert app.draft.text == starter + " "  # starters end cleanly: the passage starts a new word
        assert app.draft.pending is not None
        assert app.engine is not None


async def test_save_then_reopen_gives_the_same_story(make_app, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "After a robbery gone wrong,")
        await pilot.press("tab")
        await pilot.press("ctrl+g")
        await settle(app, pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        path = app.draft_path
        story, pending_id = app.draft.text, app.draft.pending.id
        assert app.status.info.saved
    assert path is not None and path.parent == tmp_path / "drafts"
    assert load_draft(path).text == story

    reopened = make_app(draft_path=path)
    async with reopened.run_test(size=APP_SIZE) as pilot:
        await settle(reopened, pilot)
        assert reopened.draft.text == story
        assert reopened.draft.pending is not None and reopened.draft.pending.id == pending_id
        assert reopened.editor.text == story + reopened.draft.pending.text


async def test_quit_saves_first(make_app, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press(*"Thanos")
        await pilot.press("ctrl+q")
    drafts = list((tmp_path / "drafts").glob("*.json"))
    assert len(drafts) == 1 and load_draft(drafts[0]).text == "Thanos"


async def test_open_lists_drafts_and_loads_the_chosen_one(make_app) -> None:
    app = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press(*"First story")
        await pilot.press("ctrl+s", "ctrl+n")
        await pilot.pause()
        assert app.editor.text == "" and app.draft.text == ""
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("enter")  # the newest draft is highlighted first
        await pilot.pause()
        assert app.draft.text == "First story"
        assert app.editor.text == "First story"


async def test_model_load_failure_keeps_the_old_model(make_app, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        old_engine, old_loaded = app.engine, app.loaded
        await pilot.press("f2")
        await pilot.pause()
        app.screen.query_one("#kind-other").value = True
        await pilot.pause()
        app.screen.query_one("#source").value = str(tmp_path / "no-such-model")
        await pilot.click("#load")
        await settle(app, pilot)
        errors = [n.message for n in app._notifications if n.severity == "error"]
        assert errors and "no-such-model" in errors[-1]
        assert app.engine is old_engine and app.loaded is old_loaded
        assert app.status.info.load_state == "ready"
        await type_and_generate(app, pilot, "Still works")
        assert app.draft.pending is not None


async def test_generate_before_the_model_loads_waits_visibly(make_app, tiny_loader) -> None:
    release = threading.Event()
    inner = tiny_loader

    def slow_loader(spec: ModelSpec, progress):
        release.wait(timeout=20)
        return inner(spec, progress)

    app = make_app(loader=slow_loader)
    async with app.run_test(size=APP_SIZE) as pilot:
        await pilot.pause()
        assert app.engine is None  # the first frame is up while the model loads
        await pilot.press(*"Darkseid")
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert app.status.info.load_state == "waiting for model…"
        release.set()
        await wait_until(pilot, lambda: app.draft.pending is not None)
        await settle(app, pilot)
        assert app.draft.text == "Darkseid"


def failing_engine(scripted_engine, *, pieces: int, from_request: int = 1):
    """An engine whose ``from_request``-th and later streams yield ``pieces`` pieces, then raise out-of-memory."""

    class FailingEngine(scripted_engine):
        def stream(self, request):
            stream = super().stream(request)
            if len(self.requests) < from_request:
                return stream

            class Failing:
                def __iter__(self):
                    yield from list(stream)[:pieces]
                    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

                def cancel(self):
                    stream.cancel()

            return Failing()

    return FailingEngine


@pytest.mark.parametrize("debug", [False, True])
async def test_engine_error_is_a_notification_and_the_story_is_untouched(make_app, scripted_engine, debug) -> None:
    from storyterm.tui.app import debug_log_path

    app = make_app(engine_factory=failing_engine(scripted_engine, pieces=1), debug=debug)
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "A monster")
        errors = [n.message for n in app._notifications if n.severity == "error"]
        assert errors and "out of memory" in errors[-1]
        assert app.draft.text == app.editor.text == "A monster"
        assert app.draft.pending is None and not app.editor.read_only
    # --debug: the notification says where the traceback went, and it is there.
    assert (f"traceback in {debug_log_path()}" in errors[-1]) == debug
    assert debug_log_path().is_file() == debug
    if debug:
        log = debug_log_path().read_text(encoding="utf-8")
        assert "Traceback (most recent call last)" in log and "RuntimeError: CUDA out of memory" in log


async def test_tab_moves_focus_when_nothing_is_pending(make_app) -> None:
    app = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press(*"Batman")
        await pilot.press("tab")
        await pilot.pause()
        assert not isinstance(app.focused, StoryEditor)
        assert app.draft.text == "Batman"


async def test_every_action_is_in_the_command_palette(make_app) -> None:
    app = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        titles = {command.title for command in app.get_system_commands(app.screen)}
        for title in ("Generate", "Accept", "Regenerate", "Next alt", "Prev alt", "Extend", "Undo", "Redo",
                      "Save", "Open", "New", "Quit", "Help", "Model", "Stop / dismiss"):
            assert title in titles
        await pilot.press(*"Batman")
        generate = next(c for c in app.get_system_commands(app.screen) if c.title == "Generate")
        await generate.callback()
        await settle(app, pilot)
        assert app.draft.pending is not None


async def test_tab_in_a_panel_field_moves_focus_even_with_a_pending_passage(make_app) -> None:
    app = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "A ghost")
        app.query_one("#temperature").focus()
        await pilot.pause()
        await pilot.press("tab")
        await pilot.pause()
        assert app.draft.pending is not None and app.draft.text == "A ghost"
        assert app.focused is not None and app.focused.id == "top_k"


async def test_switching_to_a_model_without_genre_tokens_offers_genres_in_words_and_free_mode(make_app, make_tiny_checkpoint) -> None:
    free_model = make_tiny_checkpoint(genres=None)
    app = make_app()
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f2")
        await pilot.pause()
        app.screen.query_one("#kind-other").value = True
        await pilot.pause()
        app.screen.query_one("#source").value = str(free_model)
        await pilot.click("#load")
        await settle(app, pilot)
        assert app.loaded is not None and app.loaded.genres == [] and app.loaded.name == free_model.name
        genre = app.draft.genre
        assert genre is not None and app.picker.genre == genre  # the genre carries over, now given in words
        options = app.picker.query_one("#genres")
        assert "Free" in str(options.get_option_at_index(options.option_count - 1).prompt)
        assert app.status.info.model == free_model.name and app.status.info.load_state == "ready"
        assert app.status.info.mode == "in words"
        options.highlighted = options.option_count - 1  # free mode is a choice of its own
        await pilot.pause()
        assert app.picker.genre is None and app.status.info.mode == "" and "free mode" in str(app.status.render())
        await type_and_generate(app, pilot, "In the future,")
        assert app.draft.pending is not None and app.draft.pending.genre is None


async def test_a_slow_load_overtaken_by_a_later_switch_is_ignored(make_app, tiny_loaded) -> None:
    release = threading.Event()
    slow_loads = []

    def loader(spec: ModelSpec, progress):
        if spec.source == "slow":
            slow_loads.append(spec)
            release.wait(timeout=20)  # finishes only after the writer has switched to another model
        return tiny_loaded

    app = make_app(loader=loader, spec=ModelSpec(source="slow"))
    async with app.run_test(size=APP_SIZE) as pilot:
        await wait_until(pilot, lambda: slow_loads)
        assert app.engine is None
        app._model_chosen(tiny_loaded.spec)  # what the model modal does on "Load"
        await wait_until(pilot, lambda: app.engine is not None)
        chosen_engine = app.engine
        release.set()
        await settle(app, pilot)
        await pilot.pause(0.2)
        assert app.engine is chosen_engine and app.spec == tiny_loaded.spec


async def test_regenerate_after_accept_replaces_the_accepted_passage_and_keeps_it(make_app) -> None:
    app = make_app(settings_toml="max_new_tokens = 12\n")
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "The Avengers")
        accepted = app.draft.pending
        await pilot.press("tab")
        await pilot.pause()
        assert app.draft.text == "The Avengers" + accepted.text
        await pilot.press("ctrl+r")
        await settle(app, pilot)
        assert app.draft.text == "The Avengers"  # the accepted passage made room for the new alternative
        assert app.draft.pending is not None and app.draft.pending.id != accepted.id
        assert accepted.id in [p.id for p in app.draft.alternatives()]
        assert app.editor.text == "The Avengers" + app.draft.pending.text
        await pilot.press("f7")
        await pilot.pause()
        assert app.draft.pending.id == accepted.id
        await pilot.press("tab")
        await pilot.pause()
        assert app.draft.text == app.editor.text == "The Avengers" + accepted.text


async def test_a_failed_regenerate_of_the_accepted_passage_leaves_the_story_as_it_was(make_app, scripted_engine) -> None:
    app = make_app(engine_factory=failing_engine(scripted_engine, pieces=2, from_request=2))
    async with app.run_test(size=APP_SIZE) as pilot:
        await settle(app, pilot)
        await type_and_generate(app, pilot, "A treasure hunter")
        await pilot.press("tab")
        await pilot.pause()
        story = app.draft.text
        await pilot.press("ctrl+r")
        await settle(app, pilot)
        assert [n.severity for n in app._notifications][-1] == "error"
        assert app.draft.text == app.editor.text == story
        assert app.draft.pending is None and app.editor.pending_text == ""


async def test_typing_the_app_has_not_yet_heard_of_is_kept_by_generate(make_app) -> None:
    """Fast typing then ctrl+g (a paste arriving as keys): the editor holds the text before its Changed messages
    reach the app. Generate must read it, not continue an empty story and then overwrite the writer's words."""
    app = make_app()
    async with app.run_test() as pilot:
        await settle(app, pilot)
        app.editor.insert("She opens the letter")
        await app.run_action("generate")          # no pause: the Changed message is still queued
        await settle(app, pilot)
        assert app.draft.text.startswith("She opens the letter")
        assert app.editor.text.startswith("She opens the letter")


async def test_keys_still_queued_in_the_editor_come_before_a_priority_action(make_app) -> None:
    """ctrl+g is a priority binding: the app runs it as soon as the key arrives, while the letters typed just
    before it may still wait in the editor's queue. The action must run after them."""
    app = make_app()
    async with app.run_test() as pilot:
        await settle(app, pilot)
        app.editor.focus()
        await pilot.pause()
        for character in "At dawn":
            app.editor.post_message(events.Key(character, character))   # queued, not yet handled
        await app.run_action("generate")
        await settle(app, pilot)
        assert app.draft.text.startswith("At dawn")
        assert app.editor.text.startswith("At dawn")
