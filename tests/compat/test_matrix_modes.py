"""The compatibility matrix, part two: how each family is written with. Genre tokens where the checkpoint has them
(else genres in words, with no chat or code marker taken for a genre), instruct mode exactly for the families with a
chat template, and the writer's settings over the checkpoint's generation_config.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from storyterm import cli
from storyterm.engine.errors import SettingsError
from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.prompt import CLASSIC_GENRES
from storyterm.engine.settings import DEFAULT_SETTINGS, SamplerSettings
from tests.model_zoo import CAUSAL_FAMILIES, FAMILIES

GREEDY = SamplerSettings(max_new_tokens=4, do_sample=False, trim_sentences=False)  # token counts exact, no grace
STORY = "The ghost screams in the old house."

pytestmark = pytest.mark.parametrize("family", CAUSAL_FAMILIES)


def test_genre_tokens_or_genres_in_words(family: str, loaded) -> None:
    model = loaded(family)
    engine = StoryEngine(model)
    if FAMILIES[family].genre_tokens:
        assert sorted(model.genres) == sorted(CLASSIC_GENRES)
        assert engine.prompt_text(GenerationRequest("horror", STORY)) == f"<BOS> <horror> {STORY}"
        return
    assert model.genres == []  # <repo_name>, <start_of_turn>, <|im_start|>… are never genres
    words = engine.prompt_text(GenerationRequest("horror", STORY, instruct=False, settings=GREEDY))
    assert "This is a horror story." in words and words.rstrip().endswith("old house.")
    free = engine.prompt_text(GenerationRequest(None, STORY, instruct=False, settings=GREEDY))
    assert "horror" not in free and free.rstrip().endswith("old house.")
    assert engine.generate(GenerationRequest("western", STORY, instruct=False, settings=GREEDY)).stats.new_tokens >= 1


def test_instruct_mode_exactly_for_chat_models(family: str, loaded) -> None:
    model = loaded(family)
    engine = StoryEngine(model)
    request = GenerationRequest(None if model.genres == [] else model.genres[0], STORY, title="Heat", settings=GREEDY)
    assert model.has_chat_template == FAMILIES[family].chat_template
    if not FAMILIES[family].chat_template:
        assert not engine.instruct_on(request)
        with pytest.raises(SettingsError, match="no chat template"):
            engine.validate(GenerationRequest(request.genre, STORY, instruct=True))
        return
    assert engine.instruct_on(request)  # on by default
    prompt = engine.prompt_text(request)
    assert "Continue the story below" in prompt and "Title: Heat" in prompt
    assert prompt.index(STORY) > prompt.index("The story so far:")
    rendered = model.tokenizer.apply_chat_template([{"role": "user", "content": "QQQ"}], tokenize=False,
                                                   add_generation_prompt=True)
    assert prompt.endswith(rendered.split("QQQ")[-1])  # the template's own end: the model's turn starts next
    result = engine.generate(request)
    assert 1 <= result.stats.new_tokens <= GREEDY.max_new_tokens
    assert not result.text or result.text[0].isspace()  # set off from the story's last word


def test_the_writers_flags_win_over_the_checkpoint_file(family: str, model_zoo, tmp_path: Path, capsys) -> None:
    path = tmp_path / family
    shutil.copytree(model_zoo(family), path)
    config_file = path / "generation_config.json"
    data = json.loads(config_file.read_text()) if config_file.is_file() else {}
    data.update(do_sample=False, temperature=0.3, top_k=7, repetition_penalty=1.05, max_new_tokens=2048)
    config_file.write_text(json.dumps(data))
    genre = ["--genre", "horror"]
    if FAMILIES[family].chat_template:  # the tiny vocabulary makes the chat request too long for 100 new tokens
        genre.append("--no-instruct")
    code = cli.main(["generate", "--model", str(path), "--dtype", "fp32", *genre, "--prompt", STORY,
                     "--temperature", "0.5", "--seed", "3", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    settings = json.loads(out.strip().splitlines()[-1])["settings"]
    assert settings["temperature"] == 0.5 and settings["do_sample"] is True  # the writer's, and it samples
    assert settings["top_k"] == 7 and settings["repetition_penalty"] == 1.05  # the file's, where the writer was silent
    assert settings["max_new_tokens"] == DEFAULT_SETTINGS.max_new_tokens  # a passage, not the file's 2048
