"""``storyterm generate --model x.gguf``: the passage streams, --json reports llama.cpp's speed and the tokens'
probabilities, and what a GGUF file cannot do is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.run_cli import GREEDY_FLAGS, assert_one_line_error, run

pytestmark = pytest.mark.gguf  # .ci/run runs these again with llama-cpp-python installed

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'storyterm[gguf]')")


def test_generate_json_from_a_gguf_file(capsys, tiny_gguf: Path) -> None:
    code, out, err = run(capsys, "generate", "--model", str(tiny_gguf), "--genre", "horror", "-p", "The ghost",
                         "--memory", "Anna is a nurse.", "--json", *GREEDY_FLAGS)
    assert code == 0, err
    data = json.loads(out)
    assert data["backend"] == "llama.cpp" and data["model"] == tiny_gguf.name
    assert data["prompt"] == "<BOS> This is a horror story. [Anna is a nurse.] The ghost"  # genre in words
    assert data["stats"]["tokens_per_second"] > 0 and 0 < data["stats"]["new_tokens"] <= 12 + 8
    _, torch_out, _ = run(capsys, "generate", "--model", str(tiny_gguf.parent / "checkpoint"), "--genre", "horror",
                          "-p", "The ghost", "--memory", "Anna is a nurse.", "--json", *GREEDY_FLAGS)
    assert json.loads(torch_out)["texts"] == data["texts"]  # the same weights write the same passage


def test_generate_streams_text_from_a_gguf_file(capsys, tiny_gguf: Path) -> None:
    code, out, err = run(capsys, "generate", "--model", str(tiny_gguf), "-p", "She opens the door", *GREEDY_FLAGS)
    assert code == 0, err
    assert out.startswith("She opens the door") and len(out) > len("She opens the door\n")


def test_logprobs_from_a_gguf_file(capsys, tiny_gguf: Path) -> None:
    code, out, err = run(capsys, "generate", "--model", str(tiny_gguf), "-g", "free", "-p", "The", "--logprobs", "3",
                         "--json", *GREEDY_FLAGS)
    assert code == 0, err
    data = json.loads(out)
    assert "".join(token["text"] for token in data["tokens"]) == data["texts"][0]
    assert all(len(token["top"]) == 3 for token in data["tokens"])


def test_what_a_gguf_model_cannot_do_is_one_line(capsys, tiny_gguf: Path) -> None:
    code, _, err = run(capsys, "generate", "--model", str(tiny_gguf), "-p", "The", "--dtype", "int8", *GREEDY_FLAGS)
    assert code != 0
    assert_one_line_error(err, "--dtype int8 does not apply to a GGUF file")
