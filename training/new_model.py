"""The model and tokenizer a training run starts from: a new GPT-2 (or Llama) with a byte-level BPE trained on the
training lines (``--from-scratch``), or a base checkpoint with storyterm's prompt tokens added (fine-tune)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from storyterm.engine.prompt import (
    BOS_TOKEN,
    CLASSIC_GENRES,
    EOS_TOKEN,
    PAD_TOKEN,
    genre_token,
    genres_from_special_tokens,
)
from storyterm.engine.settings import DEFAULT_SETTINGS

# GPT-2 shapes: (layers, width, heads). "gpt2" is the 124M original.
PRESETS: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 64, 2),
    "mini": (4, 256, 4),
    "small": (6, 384, 6),
    "medium": (8, 512, 8),
    "gpt2": (12, 768, 12),
}


def order_genres(genres: set[str]) -> list[str]:
    """The classic genres in their canonical order, then any custom ones alphabetically."""
    classic = [g for g in CLASSIC_GENRES if g in genres]
    return classic + sorted(genres - set(classic))


def train_tokenizer(lines: Sequence[str], genres: Sequence[str], vocab_size: int, model_max_length: int):
    """A byte-level BPE trained on ``lines`` with BOS/EOS/PAD and the genre tokens as special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    genre_tokens = [genre_token(g) for g in genres]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, *genre_tokens],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=genre_tokens,
        model_max_length=model_max_length,
    )


def add_prompt_tokens(tokenizer, genres: Sequence[str]) -> int:
    """Fine-tune mode: register BOS/EOS/PAD and the genre tokens (keeping genre tokens the base already has)."""
    existing = genres_from_special_tokens(getattr(tokenizer, "all_special_tokens", []))
    wanted = list(dict.fromkeys([*existing, *genres]))
    return tokenizer.add_special_tokens(
        {
            "bos_token": BOS_TOKEN,
            "eos_token": EOS_TOKEN,
            "pad_token": PAD_TOKEN,
            "extra_special_tokens": [genre_token(g) for g in wanted],
        }
    )


def build_model_from_scratch(args: argparse.Namespace, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    n_layer, n_embd, n_head = PRESETS[args.preset]
    if args.architecture == "llama":
        return build_llama_from_scratch(args, tokenizer, args.n_layer or n_layer, args.n_embd or n_embd,
                                        args.n_head or n_head)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        # No position beyond the training block exists, so none is left untrained.
        n_positions=args.block_size,
        n_layer=args.n_layer or n_layer,
        n_embd=args.n_embd or n_embd,
        n_head=args.n_head or n_head,
        resid_pdrop=args.dropout,
        embd_pdrop=args.dropout,
        attn_pdrop=args.dropout,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config)


def build_llama_from_scratch(args: argparse.Namespace, tokenizer, n_layer: int, n_embd: int, n_head: int):
    """A Llama-style model of the same size: rotary positions, RMSNorm, SwiGLU (hidden 8/3 of the width, as
    Llama), tied embeddings like GPT-2 so the parameter count stays comparable."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=args.block_size,
        num_hidden_layers=n_layer,
        hidden_size=n_embd,
        num_attention_heads=n_head,
        num_key_value_heads=n_head,
        intermediate_size=int(n_embd * 8 / 3 / 32 + 0.5) * 32,
        attention_dropout=args.dropout,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def load_base_model(args: argparse.Namespace, tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model_name_or_path)
    model.resize_token_embeddings(len(tokenizer))
    model.config.bos_token_id = tokenizer.bos_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    if args.dropout is not None:
        for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
            if hasattr(model.config, name):
                setattr(model.config, name, args.dropout)
    return model


def generation_config_for(tokenizer, genres: Sequence[str]):
    """The seed's sampling defaults; genre/BOS/PAD tokens suppressed so they never appear mid-story."""
    from transformers import GenerationConfig

    from storyterm.engine.generation import suppressed_token_ids

    return GenerationConfig(
        do_sample=DEFAULT_SETTINGS.do_sample,
        temperature=DEFAULT_SETTINGS.temperature,
        top_p=DEFAULT_SETTINGS.top_p,
        top_k=DEFAULT_SETTINGS.top_k,
        repetition_penalty=DEFAULT_SETTINGS.repetition_penalty,
        max_new_tokens=DEFAULT_SETTINGS.max_new_tokens,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=suppressed_token_ids(tokenizer, list(genres)),
    )
