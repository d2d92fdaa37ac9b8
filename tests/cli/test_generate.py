"""``storyterm generate``: streaming, --json, the story's sources, genres, settings, and passage boundaries."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from storyterm import cli
from storyterm.cli import generate as generate_command
from storyterm.cli.errors import EXIT_USAGE
from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.loading import ModelSpec, load_model
from storyterm.engine.prompt import CLASSIC_GENRES, title_prompt
from storyterm.engine.settings import SamplerSettings
from tests.cli.run_cli import GREEDY_FLAGS, assert_one_line_error, run


def test_generate_streams_prompt_and_continuation(capsys, tiny_checkpoint: Path) -> None:
    code, out, err = run(capsys, "generate", "--model", str(tiny_checkpoint), "--genre", "drama",
                         "--prompt", "She opens the door", *GREEDY_FLAGS)
    expected = StoryEngine(load_model(ModelSpec(str(tiny_checkpoint)))).generate(
        GenerationRequest("drama", "She opens the door", settings=SamplerSettings(max_new_tokens=12, do_sample=False))
    )
    assert code == 0, err
    assert out == "She opens the door" + expected.texts[0] + "\n"


def test_generate_flushes_every_piece(capsys, monkeypatch, tiny_checkpoint: Path) -> None:
    flushes = []
    real_stdout = sys.stdout

    class CountingStdout(io.StringIO):
        def flush(self) -> None:
            flushes.append(self.getvalue())

    monkeypatch.setattr(sys, "stdout", CountingStdout())
    code = cli.main(["generate", "--model", str(tiny_checkpoint), "-g", "horror", "-p", "The", *GREEDY_FLAGS])
    monkeypatch.setattr(sys, "stdout", real_stdout)
    assert code == 0
    assert len(flushes) >= 3  # prompt, then pieces as they come, then the end


def test_generate_json_with_alternatives(capsys, tiny_checkpoint: Path) -> None:
    code, out, err = run(capsys, "generate", "--model", str(tiny_checkpoint), "--genre", "sci_fi", "-p", "The ship",
                         "--n", "3", "--seed", "7", "--max-new-tokens", "10", "--temperature", "0.9", "--top-k", "20",
                         "--top-p", "0.9", "--repetition-penalty", "1.2", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert len(data["texts"]) == 3
    assert data["seed"] == 7
    assert data["settings"]["temperature"] == 0.9 and data["settings"]["top_k"] == 20
    assert data["stats"]["new_tokens"] <= 10 + 8 and data["stats"]["prompt_tokens"] > 0  # up to 8 to end a sentence
    assert all(data["texts"]) and len(data["endings"]) == 3
    assert data["genre"] == "sci_fi" and data["story"] == "The ship"
    assert data["prompt"] == "<BOS> <sci_fi> The ship"  # the exact text the model was given
    code, again, _ = run(capsys, "generate", "--model", str(tiny_checkpoint), "--genre", "sci_fi", "-p", "The ship",
                         "--n", "3", "--seed", "7", "--max-new-tokens", "10", "--temperature", "0.9", "--top-k", "20",
                         "--top-p", "0.9", "--repetition-penalty", "1.2", "--json")
    assert json.loads(again)["texts"] == data["texts"]


def test_generate_from_title_and_from_stdin(capsys, monkeypatch, tiny_checkpoint: Path) -> None:
    code, out, _ = run(capsys, "generate", "--model", str(tiny_checkpoint), "--genre", "Action",
                       "--title", "The Last Train", "--json", *GREEDY_FLAGS)
    assert code == 0
    assert json.loads(out)["story"] == title_prompt("The Last Train", "action") + " " == (
        '"The Last Train" is an action film about '  # ends cleanly: the passage starts a new word
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO("Once upon a time\n"))
    code, out, _ = run(capsys, "generate", "--model", str(tiny_checkpoint), "--genre", "action", "--json",
                       *GREEDY_FLAGS)
    assert code == 0
    assert json.loads(out)["story"] == "Once upon a time"


def test_unknown_genre_lists_the_genres(capsys, tiny_checkpoint: Path) -> None:
    code, out, err = run(capsys, "generate", "--model", str(tiny_checkpoint), "--genre", "romance", "-p", "x")
    assert code == 2
    assert out == ""
    assert_one_line_error(err, "romance", ", ".join(CLASSIC_GENRES))


def test_missing_genre_is_a_usage_error(capsys, tiny_checkpoint: Path) -> None:
    code, _, err = run(capsys, "generate", "--model", str(tiny_checkpoint), "-p", "x")
    assert code == 2
    assert_one_line_error(err, "--genre is required", "drama")


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--temperature", "0"], "temperature"),
        (["--temperature", "nan"], "temperature"),
        (["--top-p", "1.5"], "top_p"),
        (["--top-k", "-3"], "top_k"),
        (["--max-new-tokens", "0"], "max_new_tokens"),
        (["--max-new-tokens", "5000"], "context window"),
        (["--repetition-penalty", "-1"], "repetition_penalty"),
        (["--n", "0"], "num_alternatives"),
        (["--greedy", "--n", "2"], "num_alternatives"),
        (["--seed", "-5"], "seed"),
        (["--min-p", "1.5"], "min_p must be between 0 and 1"),
        (["--typical-p", "0"], "typical_p"),
    ],
)
def test_bad_settings_exit_2(capsys, tiny_checkpoint: Path, flags: list[str], fragment: str) -> None:
    code, out, err = run(capsys, "generate", "--model", str(tiny_checkpoint), "--genre", "drama", "-p", "x", *flags)
    assert code == 2
    assert out == ""
    assert_one_line_error(err, fragment)


def test_model_without_genre_tokens_takes_genres_in_words(capsys, make_tiny_checkpoint) -> None:
    path = str(make_tiny_checkpoint(genres=None))
    code, out, err = run(capsys, "generate", "--model", path, "-p", "Once", *GREEDY_FLAGS)
    assert code == 0
    assert out.startswith("Once") and "free mode" in err
    code, out, err = run(capsys, "generate", "--model", path, "--genre", "Sci-Fi", "-p", "Once", "--json",
                         *GREEDY_FLAGS)
    assert code == 0, err
    assert json.loads(out)["prompt"] == "<BOS> This is a sci-fi story. Once"
    code, out, err = run(capsys, "generate", "--model", path, "--genre", "free", "-p", "Once", "--json",
                         *GREEDY_FLAGS)
    assert code == 0 and json.loads(out)["prompt"] == "<BOS> Once" and json.loads(out)["genre"] is None
    code, _, err = run(capsys, "generate", "--model", path, "--genre", "noir", "-p", "Once")
    assert code == 2
    assert_one_line_error(err, "noir", "comedy", "config.toml")


def test_ctrl_c_cancels_the_stream(capsys, monkeypatch, tiny_checkpoint: Path) -> None:
    streams = []
    real_stream = StoryEngine.stream

    class InterruptAfterFirstPiece:
        def __init__(self, stream):
            self.stream = stream
            streams.append(stream)

        def __iter__(self):
            for piece in self.stream:
                yield piece
                raise KeyboardInterrupt

        def cancel(self):
            self.stream.cancel()

        def result(self, timeout=None):
            return self.stream.result(timeout)

    monkeypatch.setattr(StoryEngine, "stream",
                        lambda self, request: InterruptAfterFirstPiece(real_stream(self, request)))
    code, out, err = run(capsys, "generate", "--model", str(tiny_checkpoint), "-g", "drama", "-p", "The",
                         "--greedy", "--max-new-tokens", "100")
    assert code == 130
    assert "Traceback" not in err
    result = streams[0].result(timeout=10)
    assert result.cancelled and result.stats.new_tokens < 100
    assert streams[0].done


def test_non_utf8_stdin_is_a_usage_error_in_words(tiny_checkpoint: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "storyterm", "generate", "--model", str(tiny_checkpoint),
                           "--genre", "horror", *GREEDY_FLAGS], input=b"The gh\xffost\n", capture_output=True,
                          timeout=120)
    assert done.returncode == 2
    assert_one_line_error(done.stderr.decode(), "standard input is not UTF-8 text (byte 0xff at offset 6)")


def test_min_p_typical_p_and_word_guard_flags_reach_the_settings() -> None:
    from storyterm.cli.generate import sampler_settings
    from storyterm.cli.parsers import build_parser

    def settings_of(*flags: str) -> SamplerSettings:
        return sampler_settings(build_parser().parse_args(["generate", *flags]), {})

    assert settings_of() == SamplerSettings()
    chosen = settings_of("--min-p", "0.05", "--typical-p", "0.9", "--no-word-guard")
    assert (chosen.min_p, chosen.typical_p, chosen.word_guard) == (0.05, 0.9, False)
    assert settings_of("--word-guard").word_guard is True
    assert settings_of("--preset", "focused", "--min-p", "0.1").min_p == 0.1
    # A checkpoint's min-p fills in, the writer's flag wins.
    from storyterm.cli.parsers import build_parser as parser

    assert sampler_settings(parser().parse_args(["generate"]), {"min_p": 0.1}).min_p == 0.1
    assert sampler_settings(parser().parse_args(["generate", "--min-p", "0"]), {"min_p": 0.1}).min_p == 0.0


def test_generate_with_min_p_typical_p_and_no_word_guard(capsys, tiny_checkpoint: Path) -> None:
    code, out, err = run(capsys, "generate", "--model", str(tiny_checkpoint), "--genre", "drama", "-p", "The man",
                         "--min-p", "0.05", "--typical-p", "0.9", "--no-word-guard", "--seed", "3",
                         "--max-new-tokens", "8", "--json")
    assert code == 0, err
    assert json.loads(out)["texts"]


def test_word_guard_needs_a_word_list(capsys, tmp_path: Path, tiny_checkpoint: Path) -> None:
    """A model without words.txt: --word-guard is refused in one line; without the flag the JSON says it was off.
    With a word list, the guard is on by default."""
    import shutil

    from storyterm.engine.words import write_known_words

    code, out, err = run(capsys, "generate", "--model", str(tiny_checkpoint), "--genre", "drama", "-p", "The man",
                         "--word-guard", "--max-new-tokens", "4")
    assert code == EXIT_USAGE and out == ""
    assert_one_line_error(err, "--word-guard", "has no word list")
    flags = ("--genre", "drama", "-p", "The man", "--seed", "3", "--max-new-tokens", "4", "--json")
    code, out, err = run(capsys, "generate", "--model", str(tiny_checkpoint), *flags)
    assert code == 0, err
    assert json.loads(out)["settings"]["word_guard"] is False
    guarded = shutil.copytree(tiny_checkpoint, tmp_path / "guarded")
    write_known_words(guarded, ["the", "man", "walks"])
    code, out, err = run(capsys, "generate", "--model", str(guarded), *flags)
    assert code == 0, err
    assert json.loads(out)["settings"]["word_guard"] is True


# -- passage boundaries -----------------------------------------------------------------------------------------------


def test_a_starter_prompt_never_gets_a_glued_word(capsys, tiny_checkpoint: Path) -> None:
    """The issue: `--prompt "A Ghost"` gave "A Ghostageant" in 3 of 5 seeds."""
    for seed in range(5):
        code, out, err = run(capsys, "generate", "--model", str(tiny_checkpoint), "-g", "horror", "-p", "A Ghost",
                             "--seed", str(seed), "--max-new-tokens", "8")
        assert code == 0, err
        assert out.startswith("A Ghost") and not out[len("A Ghost")].isalnum(), out


def test_a_passage_may_finish_the_writer_s_word_but_never_glues_onto_a_finished_one(capsys, tmp_path: Path,
                                                                                   tiny_checkpoint: Path) -> None:
    """With a word list, "Then the tav" (no word, begins "tavern") may go on with letters; "He walked" never does.
    What the terminal shows is the prompt and the passage, nothing added between them."""
    import shutil

    from storyterm.engine.words import write_known_words

    checkpoint = shutil.copytree(tiny_checkpoint, tmp_path / "with-words")
    write_known_words(checkpoint, ["then", "the", "tavern", "he", "walked"])
    starts = {}
    for prompt in ("Then the tav", "He walked"):
        starts[prompt] = []
        for seed in range(6):
            flags = ["generate", "--model", str(checkpoint), "-g", "drama", "-p", prompt, "--seed", str(seed),
                     "--max-new-tokens", "6", "--no-trim", "--no-word-guard", "--temperature", "1.5"]
            code, out, err = run(capsys, *flags)
            assert code == 0, err
            code, data, _ = run(capsys, *flags, "--json")
            text = json.loads(data)["texts"][0]
            assert out == prompt + text + "\n"
            starts[prompt].append(text[:1])
    assert any(start.isalpha() for start in starts["Then the tav"]), starts
    assert not any(start.isalpha() for start in starts["He walked"]), starts


def test_passages_end_at_a_sentence_unless_trimming_is_off(capsys, tiny_checkpoint: Path) -> None:
    args = ["generate", "--model", str(tiny_checkpoint), "-g", "drama", "-p", "She runs.", "--seed", "3",
            "--max-new-tokens", "12", "--n", "3", "--json"]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    data = json.loads(out)
    assert set(data["endings"]) <= {"sentence", "trimmed", "word", "end-of-text"}
    for text, ending in zip(data["texts"], data["endings"], strict=True):
        assert text.strip()
        if ending in ("sentence", "trimmed"):
            assert text.rstrip()[-1] in '.!?"\'', text
    code, out, err = run(capsys, *args, "--no-trim")
    data = json.loads(out)
    assert data["settings"]["trim_sentences"] is False
    assert set(data["endings"]) <= {"length", "end-of-text"}
    assert data["stats"]["new_tokens"] <= 12


def test_streamed_output_equals_the_trimmed_passage(capsys, tiny_checkpoint: Path) -> None:
    """Text that trimming may still cut is held back, so what the terminal shows is the passage as it ended."""
    code, out, err = run(capsys, "generate", "--model", str(tiny_checkpoint), "-g", "drama", "-p", "She runs.",
                         "--seed", "5", "--max-new-tokens", "30")
    assert code == 0, err
    code, data, _ = run(capsys, "generate", "--model", str(tiny_checkpoint), "-g", "drama", "-p", "She runs.",
                        "--seed", "5", "--max-new-tokens", "30", "--json")
    assert out == "She runs." + json.loads(data)["texts"][0] + "\n"


def test_no_empty_alternative_even_from_a_model_that_wants_to_stop(capsys, monkeypatch, tiny_checkpoint: Path) -> None:
    import torch

    real_load = generate_command.load_named_model

    def load_eager_to_stop(args):
        loaded = real_load(args)
        bias = torch.zeros(loaded.model.lm_head.out_features)
        bias[loaded.tokenizer.eos_token_id] = 1e4  # EOS above everything, at every step
        loaded.model.lm_head.bias = torch.nn.Parameter(bias, requires_grad=False)
        return loaded

    monkeypatch.setattr(generate_command, "load_named_model", load_eager_to_stop)
    code, out, err = run(capsys, "generate", "--model", str(tiny_checkpoint), "-g", "horror", "-p", "The end. ",
                         "--n", "3", "--seed", "1")
    assert code == 0, err
    blocks = out.split("--- alternative ")
    assert len(blocks) == 3
    assert "stopped without writing" not in out + err
    assert blocks[0].startswith("The end. ") and blocks[0][len("The end. "):].strip()
    for block in blocks[1:]:
        assert block.split("\n")[1].strip() != "The end."
