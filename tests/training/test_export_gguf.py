"""training/export_gguf.py: a storyterm GPT-2 checkpoint written as a GGUF file llama.cpp can read."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import model_zoo
from tests.conftest import build_tiny_checkpoint

pytestmark = pytest.mark.gguf  # .ci/run runs these again with llama-cpp-python installed

gguf = pytest.importorskip("gguf", reason="writing GGUF files needs the gguf package (pip install gguf)")

from training.export_gguf import export_gguf, main  # noqa: E402


def test_tensors_vocabulary_and_special_tokens(tmp_path: Path) -> None:
    checkpoint = build_tiny_checkpoint(tmp_path / "ckpt", n_layer=2, n_embd=32)
    path = export_gguf(checkpoint, tmp_path / "out.gguf", "q8_0")
    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == 2 + 2 * 12 + 2  # embeddings, 12 per layer, final norm (the lm_head is tied)
    assert tensors["blk.0.attn_qkv.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert list(tensors["blk.0.attn_qkv.weight"].shape) == [32, 96]  # (in, out): Conv1D weights transposed
    assert tensors["position_embd.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode() for i in field.data]
    assert tokens[:3] == ["<BOS>", "<EOS>", "<PAD>"] and "<horror>" in tokens
    field = reader.fields["tokenizer.ggml.token_type"]
    types = [int(field.parts[i][0]) for i in field.data]
    assert types[tokens.index("<horror>")] == gguf.TokenType.CONTROL and types[10] == gguf.TokenType.NORMAL
    assert bytes(reader.fields["tokenizer.ggml.pre"].parts[-1]).decode() == "gpt-2"


def test_other_architectures_are_refused_in_one_line(tmp_path: Path, capsys) -> None:
    llama = model_zoo.plain_llama(tmp_path / "llama")
    assert main([str(llama), str(tmp_path / "x.gguf")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"export_gguf: error: only GPT-2 checkpoints can be exported, {llama} is 'llama'"
    assert not (tmp_path / "x.gguf").exists()
