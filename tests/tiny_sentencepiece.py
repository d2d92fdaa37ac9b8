"""A tiny Llama checkpoint with a SentencePiece-style (Metaspace, byte-fallback) tokenizer, built in-process.

Llama-2, Mistral and TinyLlama ship such a ``tokenizer.json``: a word start is "▁", decoding strips the space of
the first token. ``tokenizer_class`` decides how transformers loads it: "LlamaTokenizer" rebuilds the pipeline
(Metaspace pre-tokenizer), "TokenizersBackend" keeps the file's Llama-2 normalizer (Prepend "▁" + Replace), which
turns a leading space into a stray "▁" token.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import TINY_CORPUS

TOKENIZER_CLASSES = ("LlamaTokenizer", "TokenizersBackend")


def build_tiny_sentencepiece_checkpoint(path: Path, tokenizer_class: str = "LlamaTokenizer", *,
                                        vocab_size: int = 700, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>", *(f"<0x{byte:02X}>" for byte in range(256))],
        initial_alphabet=list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,!?\"'▁"),
    )
    tokenizer.train_from_iterator(TINY_CORPUS * 3, trainer)
    # The Llama-2 file layout: no pre-tokenizer, a normalizer that marks word starts, a decoder that strips one space.
    tokenizer.pre_tokenizer = None
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    path.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(path)
    config_file = path / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["tokenizer_class"] = tokenizer_class
    config_file.write_text(json.dumps(config))
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    ))
    model.save_pretrained(path)
    return path
