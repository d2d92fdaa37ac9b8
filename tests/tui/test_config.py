"""The user config: defaults, round trip, bad values reported and replaced, key bindings remapped in the app."""

from __future__ import annotations

from pathlib import Path

from storyterm.config import DEFAULT_KEYS, Config, default_config_path, load_config, save_config
from storyterm.engine.genres import WordGenres
from storyterm.engine.settings import PRESETS, SamplerSettings


def test_missing_file_gives_defaults_without_warnings(tmp_path: Path) -> None:
    config, warnings = load_config(tmp_path / "absent.toml")
    assert config == Config() and warnings == []


def test_default_path_is_under_the_user_config_dir() -> None:
    path = default_config_path()
    assert path.name == "config.toml" and path.parent.name == "storyterm"


def test_round_trip_keeps_settings_genre_theme_and_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    settings = SamplerSettings(max_new_tokens=40, temperature=0.7, seed=5, num_alternatives=3)
    config = Config(settings=settings, preset=None, genre="horror", theme="nord",
                    keys={**DEFAULT_KEYS, "generate": "ctrl+t"}, instruct=False,
                    word_genres=WordGenres(("horror", "space_opera"), "A {genre} tale."),
                    settings_set=frozenset({"max_new_tokens", "temperature", "seed", "num_alternatives"}))
    save_config(config, path)
    loaded, warnings = load_config(path)
    assert warnings == []
    assert loaded == config


def test_a_preset_alone_gives_its_settings(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[general]\npreset = "focused"\n')
    config, warnings = load_config(path)
    assert config.settings == PRESETS["focused"] and config.preset == "focused" and not warnings


def test_bad_parts_are_reported_and_replaced_by_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[general]\npreset = "loud"\n[settings]\ntemperature = -1\n'
        '[keys]\ngenerate = ""\nteleport = "ctrl+x"\nsave = "ctrl+w"\n'
    )
    config, warnings = load_config(path)
    assert config.settings == SamplerSettings()
    assert config.keys["generate"] == DEFAULT_KEYS["generate"] and config.keys["save"] == "ctrl+w"
    text = "\n".join(warnings)
    assert "loud" in text and "temperature" in text and "teleport" in text and "generate" in text
    assert all("\n" not in w for w in warnings)


def test_unparsable_file_is_one_warning(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[settings\nthis is not toml")
    config, warnings = load_config(path)
    assert config == Config() and len(warnings) == 1 and str(path) in warnings[0]


async def test_rebound_key_drives_the_app_and_the_help(make_app, tmp_path: Path) -> None:
    config_path = tmp_path / "rebound.toml"
    config_path.write_text('[settings]\nmax_new_tokens = 8\n[keys]\ngenerate = "ctrl+t"\n')
    app = make_app(config_path=config_path)
    async with app.run_test(size=(120, 32)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press(*"Aliens")
        await pilot.press("ctrl+g")  # no longer bound
        await pilot.pause()
        assert not app.generating and app.draft.pending is None
        await pilot.press("ctrl+t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.draft.pending is not None
        assert ("ctrl+t", "Generate a passage at the end of the story") in app.key_table()


async def test_panel_changes_are_remembered_in_the_config(make_app, tmp_path: Path) -> None:
    config_path = tmp_path / "remember.toml"
    app = make_app(config_path=config_path)
    async with app.run_test(size=(120, 32)) as pilot:
        await app.workers.wait_for_complete()
        for _ in range(500):  # the load's result arrives as a message after the worker ends
            if app.engine is not None:
                break
            await pilot.pause(0.02)
        await pilot.pause()
        field = app.query_one("#temperature")
        field.value = "0.5"
        for _ in range(100):
            if app.draft.settings.temperature == 0.5:
                break
            await pilot.pause(0.02)
        assert app.draft.settings.temperature == 0.5
    config, _ = load_config(config_path)
    assert config.settings.temperature == 0.5 and config.preset is None


def test_bad_key_bindings_get_a_warning_and_the_default(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[keys]\ngenerate = "ctrl+nonsense"\nquit = "ctrl+g"\nextend = "a"\nhelp = "shift+x"\nsave = "ctrl+t"\n'
        'redo = "f11,alt+y"\n[colours]\nx = 1\n[general]\nthem = "nord"\n[settings]\ntemprature = 2.0\n',
        encoding="utf-8",
    )
    config, warnings = load_config(path)
    assert config.keys["generate"] == DEFAULT_KEYS["generate"]
    assert config.keys["quit"] == DEFAULT_KEYS["quit"]
    assert config.keys["extend"] == DEFAULT_KEYS["extend"] and config.keys["help"] == DEFAULT_KEYS["help"]
    assert config.keys["save"] == "ctrl+t" and config.keys["redo"] == "f11,alt+y"  # good ones are kept
    text = "\n".join(warnings)
    for fragment in ("'ctrl+nonsense' is not a key name", "already generate's key", "'a' types a character",
                     "'shift+x' types a character", "'colours'", "'them'", "'temprature'"):
        assert fragment in text, (fragment, text)
    assert all("\n" not in warning for warning in warnings) and len(warnings) == 7


def test_config_is_written_through_a_unique_temp_file(tmp_path: Path, monkeypatch) -> None:
    import os

    names: list[str] = []
    real_replace = os.replace

    def spy(source, target) -> None:
        names.append(os.path.basename(source))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", spy)
    path = tmp_path / "config.toml"
    save_config(Config(), path)
    save_config(Config(genre="horror"), path)
    assert len(set(names)) == 2 and all(n != "config.toml.tmp" for n in names)
    assert load_config(path)[0].genre == "horror"
