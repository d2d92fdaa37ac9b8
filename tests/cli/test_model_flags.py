"""The model flags through the command: a model that cannot load is one line and exit 1; --allow-pickle."""

from __future__ import annotations

from pathlib import Path

from storyterm.engine import loading
from tests.cli.run_cli import GREEDY_FLAGS, assert_one_line_error, python_m, run


def test_builtin_not_installed_is_a_runtime_error(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(loading, "BUILTIN_DIR", tmp_path / "missing")
    code, out, err = run(capsys, "generate", "--genre", "drama", "-p", "x")
    assert code == 1
    assert out == ""
    assert_one_line_error(err, "built-in model is not installed")


def test_hub_id_not_cached(capsys) -> None:
    code, _, err = run(capsys, "genres", "--model", "someone/uncached-model")
    assert code == 1
    assert_one_line_error(err, "not in the local Hugging Face cache", "builtin")


def test_cuda_without_gpu(capsys, monkeypatch, tiny_checkpoint: Path) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run(capsys, "genres", "--model", str(tiny_checkpoint), "--device", "cuda")
    assert code == 1
    assert_one_line_error(err, "cuda")


def test_allow_pickle_prints_the_story_and_no_warnings(make_tiny_checkpoint) -> None:
    """Issue 12 saw two lines of torch warnings before the result; with torch 2.13 none are printed — kept so."""
    import torch
    from transformers import AutoModelForCausalLM

    path = make_tiny_checkpoint()
    model = AutoModelForCausalLM.from_pretrained(path)
    (path / "model.safetensors").unlink()
    torch.save(model.state_dict(), path / "pytorch_model.bin")
    done = python_m("generate", "--model", str(path), "--allow-pickle", "--genre", "horror", *GREEDY_FLAGS,
                     "-p", "The ghost")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() and done.stderr == ""
