"""The compatibility matrix: every model family of ``tests/model_zoo.py`` through the same loop a writer runs.

For each causal family: it loads, generates in fp32 and int8, gives ``--n 3`` alternatives, continues a story
longer than its context window, writes five passages in a row whose reused KV cache gives exactly the text of a
fresh read (greedy, fp32), and uses the writer's explicit settings. ``test_refused.py``: the families storyterm
must refuse.
Add an assertion for every family as a test parametrized over ``CAUSAL_FAMILIES`` that takes ``loaded(family)``
(``conftest.py``)
(fp32, shared: do not modify it) or ``model_zoo(family)`` (the checkpoint directory).
"""

from __future__ import annotations

import json

import pytest
import torch

from storyterm import cli
from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.loading import LoadedModel, ModelSpec, load_model
from storyterm.engine.settings import SamplerSettings
from storyterm.engine.prompt import CLASSIC_GENRES
from tests.model_zoo import CAUSAL_FAMILIES, FAMILIES

GREEDY = SamplerSettings(max_new_tokens=8, do_sample=False, trim_sentences=False)  # token counts exact, no grace
SENTENCES = ["The ghost screams in the old house.", "The family runs into the night!",
             "Nobody believes the old priest?", "Anna lights a candle in the cellar."]
LONG_STORY = " ".join(SENTENCES * 12)  # several hundred tokens: longer than every family's window
MEDIUM_STORY = " ".join(SENTENCES * 3)  # fits, with room for five passages before the window jumps

pytestmark = pytest.mark.parametrize("family", CAUSAL_FAMILIES)


def genre_for(loaded: LoadedModel) -> str:
    """A genre token where the checkpoint has them, else a genre in words."""
    return loaded.genres[0] if loaded.genres else "horror"


def request(loaded: LoadedModel, story: str, settings: SamplerSettings = GREEDY) -> GenerationRequest:
    return GenerationRequest(genre_for(loaded), story, settings=settings)


def test_loads_as_a_causal_lm_and_generates(family: str, loaded) -> None:
    model = loaded(family)
    assert model.model.can_generate() and not model.model.config.is_encoder_decoder
    if FAMILIES[family].genre_tokens:
        assert sorted(model.genres) == sorted(CLASSIC_GENRES)
    result = StoryEngine(model).generate(request(model, "The ghost screams in the old house."))
    assert 1 <= result.stats.new_tokens <= GREEDY.max_new_tokens
    assert result.stats.prompt_tokens > 1 and not result.stats.context_trimmed


def test_generates_with_int8_weights(family: str, model_zoo) -> None:
    model = load_model(ModelSpec(str(model_zoo(family)), device="cpu", dtype="int8"))
    assert model.dtype == torch.qint8
    assert any("quantized" in type(module).__module__ for module in model.model.modules())
    result = StoryEngine(model).generate(request(model, "The ghost screams in the old house."))
    assert 1 <= result.stats.new_tokens <= GREEDY.max_new_tokens


def test_three_alternatives_from_the_command_line(family: str, model_zoo, loaded, capsys) -> None:
    genre = genre_for(loaded(family))
    argv = ["generate", "--model", str(model_zoo(family)), "--dtype", "fp32", "--n", "3", "--seed", "7",
            "--max-new-tokens", "6", "--json", "--prompt", "The ghost screams in the old house."]
    argv += ["--genre", genre]
    code = cli.main(argv)
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out.strip().splitlines()[-1])
    assert len(data["texts"]) == 3 and data["seed"] == 7
    assert data["settings"]["num_alternatives"] == 3 and data["settings"]["max_new_tokens"] == 6
    # The same seed and settings give the same alternatives.
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["texts"] == data["texts"]


def test_a_story_longer_than_the_window_keeps_working(family: str, loaded) -> None:
    model = loaded(family)
    engine = StoryEngine(model)
    result = engine.generate(request(model, LONG_STORY))
    assert result.stats.context_trimmed
    assert result.stats.prompt_tokens <= model.context_window - GREEDY.max_new_tokens
    assert result.stats.new_tokens >= 1


@pytest.mark.parametrize("story", [MEDIUM_STORY, LONG_STORY], ids=["inside-window", "past-window"])
def test_five_passages_with_the_reused_cache_equal_fresh_reads(family: str, loaded, story: str) -> None:
    model = loaded(family)

    def passages(*, fresh: bool) -> list:
        engine, text, results = StoryEngine(model), story, []
        for _ in range(5):
            if fresh:  # the same windows, each read from scratch
                engine._prompt_cache.clear()
            result = engine.generate(request(model, text))
            results.append(result)
            text += result.text
        return results

    reused, fresh = passages(fresh=False), passages(fresh=True)
    assert [r.text for r in reused] == [r.text for r in fresh]
    assert [r.stats.prompt_tokens for r in reused] == [r.stats.prompt_tokens for r in fresh]
    assert any(r.stats.cached_prompt_tokens > 0 for r in reused[1:]), "the cache was never reused"
    window = FAMILIES[family].sliding_window
    if window is not None:  # passages that read past the sliding window's edge, and still reuse the cache
        assert any(r.stats.cached_prompt_tokens > window for r in reused[1:])


def test_the_writers_settings_are_used(family: str, loaded) -> None:
    model = loaded(family)
    engine = StoryEngine(model)
    settings = SamplerSettings(max_new_tokens=5, temperature=0.7, top_k=20, top_p=0.9, repetition_penalty=1.3,
                               do_sample=True, seed=11, trim_sentences=False)  # exactly 5 tokens, no sentence grace
    config = engine.generation_config(settings)
    assert (config.max_new_tokens, config.temperature, config.top_k, config.top_p, config.repetition_penalty,
            config.do_sample) == (5, 0.7, 20, 0.9, 1.3, True)
    hot = engine.generate(request(model, MEDIUM_STORY, settings.with_changes(temperature=10.0, top_k=0, top_p=1.0)))
    cold = engine.generate(request(model, MEDIUM_STORY, settings.with_changes(top_k=1)))
    greedy = engine.generate(request(model, MEDIUM_STORY, settings.with_changes(do_sample=False, seed=None)))
    assert hot.stats.new_tokens <= 5 and cold.stats.new_tokens <= 5
    assert cold.text == greedy.text != hot.text  # top-k 1 samples the argmax; a hot sampler does not
    assert hot.seed == 11 and greedy.seed is None


@pytest.mark.parametrize(("story", "starts"), [
    ("The ghost screams in the old house.", "whitespace, then a word; or a closing quote"),
    ("A Ghost", "a space or punctuation, never more letters of the word"),
    ("The ghost screams in the old house. ", "no second space: the story's own stays"),
    ("The ghost screams in the old house.\n\n", "a word: a new paragraph, no stray punctuation"),
], ids=["after-sentence", "after-word", "after-space", "after-blank-line"])
def test_spacing_before_the_passage(family: str, loaded, story: str, starts: str) -> None:
    model = loaded(family)
    text = StoryEngine(model).generate(request(model, story)).text
    assert text, "the passage is never empty"
    if story.endswith("."):
        rest = text.lstrip()  # random weights may open with any whitespace (a newline, a form feed)
        assert text[0].isspace() and (rest[:1].isalnum() or rest[:1] in "\"'“‘([") or text[0] in "\"'”’)]", (starts, text)
    elif story.endswith("Ghost"):
        assert not text[0].isalnum(), (starts, text)
    else:
        assert not text[0].isspace(), (starts, text)
        if story.endswith("\n\n"):
            assert text[0].isalnum() or text[0] in "\"'“‘([", (starts, text)
