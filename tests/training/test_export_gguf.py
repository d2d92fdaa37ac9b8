"""training/export_gguf.py: a storyterm GPT-2 checkpoint written as a GGUF file llama.cpp can read."""

from __future__ import annotations

import sys
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


@pytest.mark.parametrize(("outtype", "ffn_type", "dtype"), [("q4_k_m", gguf.GGMLQuantizationType.Q4_K, "q4_k"),
                                                          ("q4_0", gguf.GGMLQuantizationType.Q4_0, "q4_0")])
def test_quantized_types_are_made_by_llama_cpp_and_load_with_their_genres(tmp_path: Path, outtype, ffn_type,
                                                                          dtype) -> None:
    pytest.importorskip("llama_cpp", reason="the quantized types are made by llama-cpp-python")
    from storyterm.engine.generation import GenerationRequest
    from storyterm.engine.loading import ModelSpec, load_model, open_engine
    from storyterm.engine.settings import SamplerSettings

    checkpoint = build_tiny_checkpoint(tmp_path / "ckpt", n_layer=2, n_embd=256, n_head=4)
    path = export_gguf(checkpoint, tmp_path / "out.gguf", outtype)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "out.gguf"]  # the f32 input is gone
    types = {t.name: t.tensor_type for t in gguf.GGUFReader(path).tensors}
    assert types["blk.0.ffn_up.weight"] == ffn_type
    assert types["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32
    loaded = load_model(ModelSpec(str(path)))
    assert loaded.dtype == dtype and "horror" in loaded.genres
    request = GenerationRequest("horror", "The", settings=SamplerSettings(max_new_tokens=5, seed=1))
    assert open_engine(loaded).generate(request).text.strip()


def test_a_k_quant_without_llama_cpp_says_what_to_install(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    checkpoint = build_tiny_checkpoint(tmp_path / "ckpt")
    assert main([str(checkpoint), str(tmp_path / "x.gguf"), "--outtype", "q5_k_m"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("export_gguf: error: --outtype q5_k_m is made by llama.cpp: pip install 'storyterm[gguf]' "
                   "(or export f32 and run llama-quantize)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
