"""Banned words and stop sequences (engine/steering.py): a rigged tiny model that would write the banned word
never does; a stop sequence ends the passage and shows neither in the streamed nor in the final text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from storyterm.engine.errors import SettingsError
from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.loading import LoadedModel, ModelSpec, load_model
from storyterm.engine.settings import SamplerSettings
from storyterm.engine.steering import BannedWords, StopScanner, cut_at_stop, word_variants

GREEDY = SamplerSettings(max_new_tokens=24, do_sample=False, trim_sentences=False)
BANNED = re.compile(r"ghost|Ghost|GHOST")


@pytest.fixture
def loaded(tiny_checkpoint: Path) -> LoadedModel:
    return load_model(ModelSpec(str(tiny_checkpoint), device="cpu"))


def _rig_towards(loaded: LoadedModel, word: str) -> None:
    """Bias the model towards ``word``'s own tokens, and less strongly towards every token that spells part of it
    in any banned variant (so a blocked spelling invites the model to try another one)."""
    banned = BannedWords(loaded.tokenizer)
    pieces = {token for sequence in banned.bad_words_ids([word]) for token in sequence}
    own = loaded.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        loaded.model.lm_head.bias = torch.nn.Parameter(torch.zeros(loaded.model.lm_head.out_features))
        for token in pieces:
            loaded.model.lm_head.bias[token] = 6.0
        for token in own:
            loaded.model.lm_head.bias[token] = 12.0


def test_every_spelling_decodes_to_the_variant(loaded: LoadedModel) -> None:
    banned = BannedWords(loaded.tokenizer)
    for variant in word_variants("ghost"):
        spellings = banned.spellings(variant)
        assert spellings[0] == loaded.tokenizer(variant, add_special_tokens=False)["input_ids"]
        assert len(spellings) > 1  # letter by letter at least, besides the tokenizer's own
        for ids in spellings:
            assert loaded.tokenizer.decode(ids, clean_up_tokenization_spaces=False) == variant
    assert set(word_variants("ghost")) == {"ghost", " ghost", "Ghost", " Ghost", "GHOST", " GHOST"}


def test_banned_word_never_written_over_many_seeds(loaded: LoadedModel) -> None:
    _rig_towards(loaded, "ghost")
    engine = StoryEngine(loaded)
    settings = SamplerSettings(max_new_tokens=20, temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0,
                               num_alternatives=4, trim_sentences=False)
    written_without_ban = 0
    for seed in range(8):
        free = engine.generate(GenerationRequest("horror", "The", settings=settings.with_changes(seed=seed)))
        written_without_ban += sum(bool(BANNED.search(text)) for text in free.texts)
        request = GenerationRequest("horror", "The", settings=settings.with_changes(seed=seed),
                                    banned_words=("ghost",))
        stream = engine.stream(request)
        streamed = "".join(stream)
        result = stream.result()
        assert streamed.rstrip() == result.texts[0]
        for text in result.texts:
            assert not BANNED.search("The" + text), text
            assert text  # the model still writes something
    assert written_without_ban >= 12  # the rig works: without the ban many passages hold the word


def _free_greedy_text(engine: StoryEngine) -> str:
    return engine.generate(GenerationRequest("drama", "She opens the door", settings=GREEDY)).text


def test_stop_sequence_ends_the_passage_and_is_not_in_it(loaded: LoadedModel) -> None:
    engine = StoryEngine(loaded)
    full = _free_greedy_text(engine)
    assert len(full) > 12
    stop = full[8:11]
    expected = full[: full.find(stop)].rstrip()
    stream = engine.stream(GenerationRequest("drama", "She opens the door", settings=GREEDY,
                                             stop_sequences=("never-written-text", stop)))
    pieces = list(stream)
    result = stream.result()
    assert "".join(pieces).rstrip() == expected == result.text
    assert result.stats.stop_sequence == stop
    assert result.endings[0] == "stop-sequence"
    assert result.stats.new_tokens < GREEDY.max_new_tokens
    assert result.stats.to_dict()["stop_sequence"] == stop
    # A stop that is never written changes nothing.
    plain = engine.generate(GenerationRequest("drama", "She opens the door", settings=GREEDY,
                                              stop_sequences=("never-written-text",)))
    assert plain.text == full and plain.stats.stop_sequence is None


def test_stop_sequence_with_alternatives(loaded: LoadedModel) -> None:
    engine = StoryEngine(loaded)
    settings = SamplerSettings(max_new_tokens=30, seed=5, num_alternatives=3, trim_sentences=False)
    free = engine.generate(GenerationRequest("drama", "She", settings=settings))
    stops = (" the", "e")
    stopped = engine.generate(GenerationRequest("drama", "She", settings=settings, stop_sequences=stops))
    for before, after in zip(free.texts, stopped.texts):
        assert after == cut_at_stop(before, stops)[0].rstrip()
        assert not any(stop in after for stop in stops)


@given(st.text(alphabet="ab\n .", max_size=40), st.lists(st.integers(0, 40), max_size=8),
       st.lists(st.text(alphabet="ab\n .", min_size=1, max_size=4), max_size=3))
def test_stop_scanner_shows_exactly_the_cut_text(text: str, cuts: list[int], stops: list[str]) -> None:
    points = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]
    scanner = StopScanner(stops)
    shown = "".join(scanner.filter(pieces))
    assert (shown, scanner.stop) == cut_at_stop(text, stops)


@pytest.mark.parametrize(("banned", "stops", "message"), [
    (("",), (), "a banned word must be some text"),
    (("  ",), (), "a banned word must be some text"),
    (("x" * 41,), (), "at most 40 characters"),
    ((), ("",), "a stop sequence must be some text"),
    ((), ("x" * 101,), "at most 100 characters"),
    ((), tuple(str(i) for i in range(17)), "at most 16 stop sequences"),
    ("ghost", (), "lists of texts"),
])
def test_bad_banned_words_and_stops_are_refused(loaded: LoadedModel, banned, stops, message) -> None:
    engine = StoryEngine(loaded)
    with pytest.raises(SettingsError, match=message) as error:
        engine.stream(GenerationRequest("drama", "The", settings=GREEDY, banned_words=banned, stop_sequences=stops))
    assert "\n" not in str(error.value)
    assert not engine.busy
