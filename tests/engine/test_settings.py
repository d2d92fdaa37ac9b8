import math

import pytest

from storyterm.engine.errors import SettingsError
from storyterm.engine.settings import DEFAULT_SETTINGS, PRESETS, SamplerSettings, preset


def test_defaults_are_the_seed_apps():
    s = DEFAULT_SETTINGS
    assert (s.do_sample, s.temperature, s.top_p, s.top_k, s.repetition_penalty, s.max_new_tokens) == (
        True, 1.2, 0.95, 50, 1.1, 100,
    )


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 2.5}, "max_new_tokens"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"repetition_penalty": math.inf}, "repetition_penalty"),
        ({"num_alternatives": 0}, "num_alternatives"),
        ({"seed": -3}, "seed"),
        ({"do_sample": False, "num_alternatives": 3}, "num_alternatives"),
        ({"min_p": -0.1}, "min_p must be between 0 and 1"),
        ({"min_p": 1.5}, "min_p must be between 0 and 1"),
        ({"min_p": math.nan}, "min_p"),
        ({"min_p": "0.1"}, "min_p"),
        ({"typical_p": 0}, r"typical_p must be in \(0, 1\]"),
        ({"typical_p": 1.01}, "typical_p"),
        ({"word_guard": "yes"}, "word_guard must be true or false"),
    ],
)
def test_each_bad_value_is_refused_with_its_name(changes, fragment):
    with pytest.raises(SettingsError, match=fragment):
        DEFAULT_SETTINGS.with_changes(**changes).validate()


def test_max_new_tokens_must_fit_the_window():
    with pytest.raises(SettingsError, match="context window of 128"):
        SamplerSettings(max_new_tokens=128).validate(context_window=128)
    SamplerSettings(max_new_tokens=127).validate(context_window=128)


def test_greedy_ignores_temperature():
    SamplerSettings(do_sample=False, temperature=0).validate()


def test_presets_are_valid_and_unknown_is_refused():
    for settings in PRESETS.values():
        settings.validate()
    with pytest.raises(SettingsError, match="unknown preset"):
        preset("nope")


def test_min_p_typical_p_and_the_word_guard_default_to_off_off_on():
    assert (DEFAULT_SETTINGS.min_p, DEFAULT_SETTINGS.typical_p, DEFAULT_SETTINGS.word_guard) == (0.0, 1.0, True)
    SamplerSettings(min_p=0.0, typical_p=1.0).validate()
    SamplerSettings(min_p=1.0, typical_p=0.2, word_guard=False).validate()


def test_settings_saved_before_min_p_typical_p_and_the_guard_still_load():
    old = {k: v for k, v in SamplerSettings(top_k=7).to_dict().items() if k not in {"min_p", "typical_p", "word_guard"}}
    assert SamplerSettings.from_dict(old) == SamplerSettings(top_k=7)


def test_dict_round_trip_ignores_unknown_keys():
    s = SamplerSettings(seed=7, top_k=10)
    assert SamplerSettings.from_dict({**s.to_dict(), "extra": 1}) == s
