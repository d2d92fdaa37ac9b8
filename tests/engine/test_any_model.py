"""Any model a writer brings: genre tokens only where a checkpoint has them, genres in words otherwise, instruct mode
for chat models, every EOS id honoured, non-causal models refused, and the writer's settings over the file's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyterm.engine.checkpoint_defaults import resolve_settings
from storyterm.engine.errors import ModelLoadError, SettingsError, UnknownGenreError
from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.genres import DEFAULT_WORD_GENRES, WordGenres, genre_sentence
from storyterm.engine.loading import LoadedModel, ModelSpec, list_models, load_model
from storyterm.engine.settings import DEFAULT_SETTINGS, SamplerSettings
from tests import model_zoo

GREEDY = SamplerSettings(max_new_tokens=6, do_sample=False, trim_sentences=False)  # exactly 6 tokens


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="module")
def smollm(zoo: Path) -> LoadedModel:
    return load_model(ModelSpec(str(model_zoo.smollm_llama(zoo / "smollm"))))


@pytest.fixture(scope="module")
def qwen(zoo: Path) -> LoadedModel:
    return load_model(ModelSpec(str(model_zoo.qwen_chat(zoo / "qwen"))))


def prompt_of(engine: StoryEngine, request: GenerationRequest) -> str:
    return engine.prompt_text(request)


@pytest.mark.parametrize("fmt", ["slow", "fast"])
def test_the_original_projects_genre_tokens_in_both_tokenizer_formats(zoo: Path, fmt: str) -> None:
    path = model_zoo.original_gpt2(zoo / f"original-{fmt}", fmt)
    assert (path / ("vocab.json" if fmt == "slow" else "tokenizer.json")).is_file()
    loaded = load_model(ModelSpec(str(path)))
    assert loaded.genres == list(model_zoo.ORIGINAL_GENRES)
    engine = StoryEngine(loaded)
    assert prompt_of(engine, GenerationRequest("horror", "The ghost")) == "<BOS> <horror> The ghost"
    assert engine.generate(GenerationRequest("horror", "The ghost", settings=GREEDY)).stats.new_tokens > 0


def test_storyterm_training_info_says_which_tokens_are_genres(zoo: Path) -> None:
    path = model_zoo.storyterm_trained(zoo / "trained")
    info = json.loads((path / "training_info.json").read_text())
    info["genres"] = ["drama", "horror"]  # the tokenizer has six genre tokens; training says two of them count
    (path / "training_info.json").write_text(json.dumps(info))
    assert load_model(ModelSpec(str(path))).genres == ["drama", "horror"]


@pytest.mark.parametrize("build", [model_zoo.smollm_llama, model_zoo.gemma_chat], ids=["smollm", "gemma"])
def test_chat_and_code_tokens_are_never_genres(zoo: Path, build) -> None:
    loaded = load_model(ModelSpec(str(build(zoo / f"not-genres-{build.__name__}"))))
    assert loaded.genres == []
    assert loaded.free_mode


def test_genres_in_words_for_a_model_without_genre_tokens(smollm: LoadedModel) -> None:
    engine = StoryEngine(smollm)
    assert prompt_of(engine, GenerationRequest("sci_fi", "The ship")) == (
        "<|endoftext|> This is a sci-fi story. The ship"
    )
    assert prompt_of(engine, GenerationRequest("action", "", memory="Anna is a spy.")) == (
        "<|endoftext|> This is an action story. [Anna is a spy.]"
    )
    assert prompt_of(engine, GenerationRequest(None, "The ship")) == "<|endoftext|> The ship"  # free mode
    custom = WordGenres(("space_opera",), 'A {genre} tale, told by "{a_genre}" lover.')
    assert prompt_of(engine, GenerationRequest("space_opera", "X", word_genres=custom)) == (
        '<|endoftext|> A space-opera tale, told by "a space-opera" lover. X'
    )
    with pytest.raises(UnknownGenreError, match="space_opera.*config.toml"):
        engine.validate(GenerationRequest("space_opera", "X"))
    assert engine.generate(GenerationRequest("horror", "The ghost", settings=GREEDY)).stats.new_tokens == 6


def test_default_word_genres_are_the_six_and_more() -> None:
    assert DEFAULT_WORD_GENRES[:6] == model_zoo.CLASSIC_GENRES
    assert {"comedy", "romance", "western", "fantasy", "mystery"} <= set(DEFAULT_WORD_GENRES)
    assert genre_sentence("This is {a_genre} story.", "action") == "This is an action story."


def test_the_words_header_stays_whole_when_a_long_story_is_trimmed(smollm: LoadedModel) -> None:
    engine = StoryEngine(smollm, smart_context=False)
    story = " ".join(["The ghost screams in the old house."] * 80)
    request = GenerationRequest("horror", story, memory="Anna is a spy.", settings=GREEDY)
    prepared = engine.prepare(request)
    assert prepared.context_trimmed
    assert len(prepared.input_ids) <= smollm.context_window - GREEDY.max_new_tokens
    text = prompt_of(engine, request)
    assert text.startswith("<|endoftext|> This is a horror story. [Anna is a spy.] ")
    assert text.endswith("in the old house.")


def test_instruct_mode_asks_a_chat_model_to_continue(qwen: LoadedModel) -> None:
    assert qwen.has_chat_template and qwen.genres == []
    engine = StoryEngine(qwen)
    request = GenerationRequest("horror", "The lights go out.", memory="Anna is a spy.", title="Heat",
                                settings=GREEDY)
    assert engine.instruct_on(request)  # on by default for a model with a chat template
    text = prompt_of(engine, request)
    assert text.startswith("<|im_start|>user\nWe are co-writing a horror story. Continue the story")
    assert "Title: Heat" in text and "Keep in mind: Anna is a spy." in text
    assert text.endswith("The story so far:\n\nThe lights go out.<|im_end|>\n<|im_start|>assistant\n")
    plain = GenerationRequest("horror", "The lights go out.", instruct=False)
    assert prompt_of(engine, plain) == "This is a horror story. The lights go out."  # no BOS in Qwen's tokenizer
    stream = engine.stream(request)
    streamed = "".join(stream)
    result = stream.result()
    assert streamed == result.texts[0]
    assert not streamed or streamed[0].isspace()  # a reply is set off from the story's last word


def test_instruct_mode_keeps_the_request_whole_when_trimming(qwen: LoadedModel) -> None:
    engine = StoryEngine(qwen, smart_context=False)
    story = " ".join(f"Night {n} falls on the old house." for n in range(60))
    request = GenerationRequest("horror", story, title="Heat", settings=GREEDY)
    prepared = engine.prepare(request)
    assert prepared.context_trimmed and len(prepared.input_ids) <= qwen.context_window - GREEDY.max_new_tokens
    text = prompt_of(engine, request)
    assert text.startswith("<|im_start|>user\nWe are co-writing a horror story.") and "Title: Heat" in text
    assert text.endswith("Night 59 falls on the old house.<|im_end|>\n<|im_start|>assistant\n")
    assert "Night 0 falls" not in text


def test_instruct_mode_needs_a_chat_template(smollm: LoadedModel) -> None:
    with pytest.raises(SettingsError, match="no chat template"):
        StoryEngine(smollm).validate(GenerationRequest(None, "x", instruct=True))


def test_typed_chat_markers_stay_text(qwen: LoadedModel) -> None:
    engine = StoryEngine(qwen)
    prepared = engine.prepare(GenerationRequest(None, "x", memory="<|im_end|>", settings=GREEDY))
    im_end = qwen.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert prepared.input_ids.count(im_end) == 1  # only the template's own, after the story


def test_every_eos_id_of_the_checkpoint_ends_a_passage(zoo: Path) -> None:
    loaded = load_model(ModelSpec(str(model_zoo.qwen_chat(zoo / "qwen-eos"))))
    im_end, endoftext = (loaded.tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>"))
    engine = StoryEngine(loaded)
    assert engine.generation_config(GREEDY).eos_token_id == [im_end, endoftext]
    # All hidden states zero → all logits zero → greedy picks id 0, <|endoftext|>: the second EOS of the list.
    assert endoftext == 0
    loaded.model.model.norm.weight.data.zero_()
    # End at sentence off: the end token counts wherever the model draws it (on, it waits for a sentence end).
    settings = SamplerSettings(max_new_tokens=20, do_sample=False, trim_sentences=False)
    result = engine.generate(GenerationRequest(None, "The ghost", settings=settings))
    # The first token may not be an end (a passage is never empty, engine/passage.py); the next one ends it.
    assert result.stats.new_tokens == 2 and result.text.strip() and result.endings == ("end-of-text",)


@pytest.mark.parametrize(("build", "words"), [(model_zoo.bert_masked, "masked language model"),
                                              (model_zoo.t5, "encoder-decoder model")], ids=["bert", "t5"])
def test_models_that_do_not_continue_text_are_refused_in_one_line(zoo: Path, build, words: str) -> None:
    path = build(zoo / f"refused-{build.__name__}")
    with pytest.raises(ModelLoadError) as caught:
        load_model(ModelSpec(str(path)))
    message = str(caught.value)
    assert words in message and "decoder-only causal language models" in message
    assert "\n" not in message and "Error" not in message and "transformers" not in message


def test_refused_models_are_not_listed(monkeypatch: pytest.MonkeyPatch, zoo: Path) -> None:
    cache = zoo / "hub"
    for name, build in (("bert", model_zoo.bert_masked), ("t5", model_zoo.t5), ("smol", model_zoo.smollm_llama)):
        snapshot = cache / f"models--someone--{name}" / "snapshots" / "abc"
        build(snapshot)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    sources = [info.source for info in list_models()]
    assert "someone/smol" in sources and "someone/bert" not in sources and "someone/t5" not in sources


def test_the_writers_settings_win_over_the_checkpoint_file(zoo: Path) -> None:
    path = model_zoo.plain_llama(zoo / "greedy-file", generation={
        "do_sample": False, "temperature": 0.3, "top_k": 7, "max_new_tokens": 2048})
    loaded = load_model(ModelSpec(str(path)))
    assert loaded.checkpoint_settings == {"do_sample": False, "temperature": 0.3, "top_k": 7}
    defaults = loaded.generation_defaults
    assert (defaults.do_sample, defaults.temperature, defaults.top_k) == (False, 0.3, 7)
    assert defaults.max_new_tokens == DEFAULT_SETTINGS.max_new_tokens  # a passage, not a 2048-token chat answer
    writer = resolve_settings({"temperature": 0.9}, loaded.checkpoint_settings)
    assert (writer.do_sample, writer.temperature, writer.top_k) == (True, 0.9, 7)  # a temperature asks for sampling
    assert resolve_settings({"num_alternatives": 3}, loaded.checkpoint_settings).do_sample
    assert not resolve_settings({"temperature": 0.9, "do_sample": False}, loaded.checkpoint_settings).do_sample
    assert not resolve_settings({"seed": 4}, loaded.checkpoint_settings).do_sample
