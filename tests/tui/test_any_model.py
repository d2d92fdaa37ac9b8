"""The editor with models that are not storyterm's: genres in words in the picker (free mode a choice of its own),
the instruct switch and status for chat models, and the checkpoint's sampling defaults under the writer's."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyterm.config import load_config
from storyterm.engine.genres import DEFAULT_WORD_GENRES
from storyterm.engine.loading import ModelSpec
from storyterm.engine.prompt import genre_label
from storyterm.tui.starters import STARTERS
from tests import model_zoo

SIZE = (120, 32)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tui-zoo")


async def ready(app, pilot) -> None:
    for _ in range(1500):
        if app.engine is not None or app.load_failed:
            break
        await pilot.pause(0.02)
    assert app.engine is not None, app.load_failed
    await pilot.pause()


async def generated(app, pilot) -> None:
    await pilot.press("ctrl+g")
    for _ in range(1500):
        await pilot.pause(0.02)
        if not app.generating and app.draft.pending is not None:
            break
    await app.workers.wait_for_complete()
    await pilot.pause()


def option_labels(app) -> list[str]:
    genres = app.picker.query_one("#genres")
    return [str(genres.get_option_at_index(i).prompt) for i in range(genres.option_count)]


async def test_genres_in_words_for_a_model_without_genre_tokens(make_app, zoo: Path, tmp_path: Path) -> None:
    path = model_zoo.smollm_llama(zoo / "smollm")
    config_path = tmp_path / "words.toml"
    config_path.write_text("[settings]\nmax_new_tokens = 6\nseed = 3\n")
    app = make_app(spec=ModelSpec(str(path)), config_path=config_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        assert str(app.picker.query_one("#genre-title").render()) == "Genre (in words)"
        assert option_labels(app) == [genre_label(g) for g in DEFAULT_WORD_GENRES] + ["Free (no genre)"]
        assert not app.picker.query_one("#instruct-row").display  # no chat template: no instruct switch
        genres = app.picker.query_one("#genres")
        genres.highlighted = list(DEFAULT_WORD_GENRES).index("comedy")
        await pilot.pause()
        assert app.picker.genre == "comedy" and app.draft.genre == "comedy"
        starters = app.picker.query_one("#starters")
        assert [str(starters.get_option_at_index(i).prompt) for i in range(starters.option_count)] == STARTERS["comedy"]
        assert app.status.info.mode == "in words"
        await pilot.press(*"Once")
        await generated(app, pilot)
        assert app.draft.pending is not None and app.draft.pending.genre == "comedy"
        assert app.engine.prompt_text(app.current_request()).startswith("<|endoftext|> This is a comedy story. Once")
        genres.highlighted = len(DEFAULT_WORD_GENRES)  # free mode, chosen explicitly
        await pilot.pause()
        assert app.picker.genre is None and app.status.info.mode == "" and "free mode" in str(app.status.render())
    config, _ = load_config(config_path)
    assert config.genre == "free"


async def test_instruct_switch_for_a_chat_model(make_app, zoo: Path, tmp_path: Path) -> None:
    path = model_zoo.qwen_chat(zoo / "qwen")
    config_path = tmp_path / "instruct.toml"
    config_path.write_text("[settings]\nmax_new_tokens = 6\nseed = 3\n")
    app = make_app(spec=ModelSpec(str(path)), config_path=config_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        switch = app.picker.query_one("#instruct")
        assert app.picker.query_one("#instruct-row").display and switch.value  # on by default
        assert app.status.info.mode == "instruct" and "instruct" in str(app.status.render())
        app.picker.set_title("High Noon")
        await generated(app, pilot)
        assert app.draft.text == ""  # the title went into the request, not into the story
        assert app.draft.pending is not None
        prompt = app.engine.prompt_text(app.current_request())
        assert prompt.startswith("<|im_start|>user\n") and "Title: High Noon" in prompt
        switch.value = False
        await pilot.pause()
        assert not app.instruct and app.status.info.mode in ("in words", "")
        assert not app.engine.prompt_text(app.current_request()).startswith("<|im_start|>")
    config, _ = load_config(config_path)
    assert config.instruct is False


def app_with_checkpoint_file(make_app, folder: Path, generation: dict, config_path: Path, settings_toml: str):
    """The editor on a Llama checkpoint whose generation_config.json says ``generation``."""
    path = model_zoo.plain_llama(folder, generation=generation)
    config_path.write_text(f"[settings]\n{settings_toml}")
    return make_app(spec=ModelSpec(str(path)), config_path=config_path)


async def test_the_editor_fills_unset_settings_from_the_checkpoint(make_app, zoo: Path, tmp_path: Path) -> None:
    app = app_with_checkpoint_file(make_app, zoo / "greedy-file", {
        "do_sample": False, "temperature": 0.3, "top_k": 9, "max_new_tokens": 2048},
        tmp_path / "writer.toml", "max_new_tokens = 12\ntemperature = 0.9\n")
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        settings = app.draft.settings
        assert settings.max_new_tokens == 12 and settings.temperature == 0.9  # the writer's
        assert settings.top_k == 9  # the checkpoint's, where the writer set nothing
        assert settings.do_sample  # a temperature the writer set asks for sampling, whatever the file says
        assert app.panel.query_one("#top_k").value == "9"


async def test_model_default_preset_follows_the_checkpoints_sampling(make_app, zoo: Path, tmp_path: Path) -> None:
    from textual.widgets import Select

    from storyterm.config import PRESET_FIELDS
    from storyterm.engine.settings import PRESETS

    config_path = tmp_path / "writer.toml"
    app = app_with_checkpoint_file(make_app, zoo / "sampling-file", {
        "do_sample": True, "temperature": 0.6, "top_k": 11, "repetition_penalty": 1.2}, config_path,
        "max_new_tokens = 12\n")
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        preset = app.panel.query_one("#preset", Select)
        assert preset.value == "model"  # not "Custom": the checkpoint's own settings have a name
        preset.value = "wild"
        await pilot.pause()
        assert app.draft.settings.temperature == PRESETS["wild"].temperature
        assert PRESET_FIELDS <= app.config.settings_set
        preset.value = "model"
        await pilot.pause()
        settings = app.draft.settings
        assert (settings.temperature, settings.top_k, settings.repetition_penalty) == (0.6, 11, 1.2)
        assert settings.max_new_tokens == 12  # a preset never changes the length
        assert not PRESET_FIELDS & app.config.settings_set  # the next checkpoint's defaults fill them again
    assert "temperature" not in load_config(config_path)[0].settings_set


async def test_no_model_default_preset_without_checkpoint_sampling(make_app) -> None:
    from textual.widgets import Select

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        options = [value for _, value in app.panel.query_one("#preset", Select)._options]
        assert "model" not in options and "classic" in options
