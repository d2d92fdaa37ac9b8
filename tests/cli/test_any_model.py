"""The command line with models that are not storyterm's: genres in words, instruct mode, refusals, and the
writer's flags over the checkpoint's generation_config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyterm import cli
from storyterm.engine.settings import DEFAULT_SETTINGS
from tests import model_zoo


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-zoo")


@pytest.fixture(scope="module")
def greedy_file_model(zoo: Path) -> Path:
    """A base model whose generation_config.json says greedy, temperature 0.3 and 2048-token answers."""
    return model_zoo.plain_llama(zoo / "greedy-file", generation={
        "do_sample": False, "temperature": 0.3, "max_new_tokens": 2048})


@pytest.fixture(scope="module")
def chat_model(zoo: Path) -> Path:
    return model_zoo.qwen_chat(zoo / "qwen")


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code = cli.main(["generate", *argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def run_error(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return code, lines[0]


def test_the_writers_flags_win_over_the_checkpoint_file(capsys, greedy_file_model: Path) -> None:
    model = ["--model", str(greedy_file_model), "-p", "The ghost", "--seed", "5"]
    default = run_json(capsys, *model)
    assert default["settings"]["do_sample"] is False  # the file's greedy fills what the writer left unset
    assert default["settings"]["max_new_tokens"] == DEFAULT_SETTINGS.max_new_tokens  # never the file's 2048
    # Random weights give nearly flat logits, so two temperatures pick the same tokens for a while: seed 6 and
    # untrimmed passages show the difference within 12 tokens (seed 5 did not once the first token must start a word).
    cool = run_json(capsys, *model, "--temperature", "0.5", "--max-new-tokens", "12", "--no-trim", "--seed", "6")
    hot = run_json(capsys, *model, "--temperature", "5", "--max-new-tokens", "12", "--no-trim", "--seed", "6")
    assert cool["settings"]["do_sample"] and cool["settings"]["temperature"] == 0.5
    assert cool["texts"] != hot["texts"]  # the temperature the writer set is used, not ignored
    three = run_json(capsys, *model, "--n", "3", "--max-new-tokens", "6")
    assert len(three["texts"]) == 3
    sampled = run_json(capsys, *model, "--sample", "--max-new-tokens", "6")
    assert sampled["settings"]["do_sample"] and sampled["settings"]["temperature"] == 0.3  # the file's, unset by us
    greedy = run_json(capsys, *model, "--greedy", "--temperature", "0.5", "--max-new-tokens", "6")
    assert greedy["settings"]["do_sample"] is False
    code, line = run_error(capsys, "generate", *model, "--greedy", "--sample")
    assert code == 2 and "--sample" in line


def test_instruct_mode_on_the_command_line(capsys, chat_model: Path) -> None:
    model = ["--model", str(chat_model), "--greedy", "--max-new-tokens", "6"]
    chat = run_json(capsys, *model, "-g", "horror", "-p", "The lights go out.", "--memory", "Anna is a spy.")
    assert chat["instruct"] is True
    assert chat["prompt"].startswith("<|im_start|>user\nWe are co-writing a horror story.")
    assert chat["prompt"].endswith("The lights go out.<|im_end|>\n<|im_start|>assistant\n")
    assert "Keep in mind: Anna is a spy." in chat["prompt"]
    titled = run_json(capsys, *model, "-g", "western", "--title", "High Noon")
    assert titled["story"] == "" and "Title: High Noon" in titled["prompt"]
    assert "Write its first few sentences" in titled["prompt"]
    plain = run_json(capsys, *model, "-g", "horror", "-p", "The lights go out.", "--no-instruct")
    assert plain["instruct"] is False and plain["prompt"] == "This is a horror story. The lights go out."
    plain_title = run_json(capsys, *model, "-g", "western", "--title", "High Noon", "--no-instruct")
    assert plain_title["prompt"] == 'This is a western story. "High Noon" is a western film about'


def test_instruct_needs_a_chat_template(capsys, greedy_file_model: Path) -> None:
    code, line = run_error(capsys, "generate", "--model", str(greedy_file_model), "-p", "x", "--instruct")
    assert code == 2 and "no chat template" in line


def test_config_genres_and_template_reach_the_command_line(capsys, greedy_file_model: Path) -> None:
    from storyterm.config import default_config_path

    path = default_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('[genres]\nlist = ["Space Opera", "noir"]\ntemplate = "A {genre} tale."\n')
    try:
        data = run_json(capsys, "--model", str(greedy_file_model), "-g", "space-opera", "-p", "Stars",
                        "--max-new-tokens", "4")
        assert data["genre"] == "space_opera"
        assert data["prompt"] == "<s> A space-opera tale. Stars"
        code, line = run_error(capsys, "generate", "--model", str(greedy_file_model), "-g", "horror", "-p", "x")
        assert code == 2 and "space_opera, noir" in line
        cli.main(["genres", "--model", str(greedy_file_model)])
        assert capsys.readouterr().out.split() == ["space_opera", "Space-Opera", "noir", "Noir"]
    finally:
        path.unlink()


@pytest.mark.parametrize("build", [model_zoo.bert_masked, model_zoo.t5], ids=["bert", "t5"])
def test_non_causal_models_are_refused(capsys, zoo: Path, build) -> None:
    path = build(zoo / f"refused-{build.__name__}")
    code, line = run_error(capsys, "generate", "--model", str(path), "-p", "x")
    assert code == 1 and "decoder-only causal language models" in line


def test_a_half_written_word_is_finished_once_on_the_command_line(capsys, zoo: Path) -> None:
    """Token healing (a model without a word list): the story's last token is written again by the model and cut
    from the passage, so the printed story + passage never doubles it; the JSON prompt is the writer's whole text."""
    from tests.tiny_sentencepiece import build_tiny_sentencepiece_checkpoint

    model = build_tiny_sentencepiece_checkpoint(zoo / "sentencepiece")
    story = "The detective finds a lett"
    common = ["--model", str(model), "-p", story, "--seed", "2", "--max-new-tokens", "8", "--no-trim"]
    from storyterm.engine.generation import GenerationRequest, StoryEngine
    from storyterm.engine.loading import ModelSpec, load_model

    engine = StoryEngine(load_model(ModelSpec(str(model), device="cpu")))
    assert engine.prepare_passage(GenerationRequest(None, story)).healed == "t"  # "lett" begins "letter"
    data = run_json(capsys, *common, "--logprobs", "3")
    assert data["prompt"].endswith(story)
    (text,) = data["texts"]
    assert text and "".join(token["text"] for token in data["tokens"]) == text
    assert cli.main(["generate", *common]) == 0
    assert capsys.readouterr().out == story + text + "\n"
