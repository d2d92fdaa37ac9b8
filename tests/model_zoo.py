"""Tiny random-weight checkpoints of the layouts a writer brings, built in-process (no network, seconds on a CPU).

- ``original_gpt2``: the original project's GPT-2 (``gpt2-genre-story-generator``): ``<BOS>``/``<EOS>``/``<PAD>`` and
  six ``<genre>`` special tokens, no training_info.json, saved as ``vocab.json`` + ``merges.txt`` + ``added_tokens.json``
  + ``special_tokens_map.json`` (``fmt="slow"``) or as ``tokenizer.json`` (``fmt="fast"``).
- ``smollm_llama``: a Llama with SmolLM2's extra special tokens (``<repo_name>``, ``<file_sep>``, ``<gh_stars>``…).
- ``gemma_chat``: a Gemma with ``<start_of_turn>``/``<end_of_turn>`` and a Gemma-style chat template (no system role).
- ``qwen_chat``: a Qwen2 with a ChatML template whose generation_config ends turns with two EOS ids.
- ``bert_masked`` / ``t5``: models storyterm must refuse.

The compatibility matrix (``tests/compat/``) runs every family of ``FAMILIES`` through the writer's loop; the
session fixture ``model_zoo(name)`` (``tests/conftest.py``) builds each once. More families built here: SentencePiece-
style (Metaspace) Llama and Mistral with and without a small sliding window, Qwen2 with ``use_sliding_window``,
GPT-NeoX, OPT, Phi-3, Gemma-2 (interleaved sliding and global layers) and Bloom. Add a family with a builder and a
``Family`` entry.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyterm.engine.prompt import CLASSIC_GENRES

CORPUS = [
    "A man walks into a bar and orders a drink while the city sleeps.",
    "The ghost screams in the old house and the family runs into the night.",
    "Captain Vega pilots the starship through the asteroid field toward Mars.",
    "The detective finds a letter hidden under the floor of the hotel room.",
    "She falls in love with the painter who lives across the street.",
    "This is a horror story. This is a comedy story. We are co-writing a story. Continue the story below.",
]
ORIGINAL_GENRES = ("superhero", "action", "horror", "thriller", "sci_fi", "drama")
SMOLLM_EXTRA = ["<|im_start|>", "<|im_end|>", "<repo_name>", "<reponame>", "<file_sep>", "<filename>", "<gh_stars>",
                "<issue_start>", "<jupyter_code>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _bpe(specials: Sequence[str], vocab_size: int = 360):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(CORPUS * 2, trainer)
    return backend


def _fast_tokenizer(specials: Sequence[str], **kwargs):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=_bpe(specials), **kwargs)


def _save_model(path: Path, model, tokenizer=None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return path


def original_gpt2(path: Path, fmt: str = "fast") -> Path:
    """The original project's layout: a GPT-2 tokenizer plus <BOS>/<EOS>/<PAD> and the genre tokens as added
    special tokens (its special_tokens_map.json lists them as additional_special_tokens)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    specials = ["<BOS>", "<EOS>", "<PAD>", *(f"<{g}>" for g in ORIGINAL_GENRES)]
    backend = _bpe(["<|endoftext|>"])
    path.mkdir(parents=True, exist_ok=True)
    special_map = {"bos_token": "<BOS>", "eos_token": "<EOS>", "unk_token": "<|endoftext|>", "pad_token": "<PAD>",
                   "additional_special_tokens": specials[3:]}
    if fmt == "slow":
        backend.model.save(str(path))  # vocab.json + merges.txt
        base = len(json.loads((path / "vocab.json").read_text()))
        (path / "added_tokens.json").write_text(json.dumps({t: base + i for i, t in enumerate(specials)}))
        (path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 128,
                                                                 "tokenizer_class": "GPT2Tokenizer"}))
    else:
        from transformers import PreTrainedTokenizerFast

        backend.add_special_tokens(specials)
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=128)
        tokenizer.save_pretrained(path)
        for leftover in ("tokenizer_config.json",):  # keep only tokenizer.json + special_tokens_map.json
            config = json.loads((path / leftover).read_text())
            config.pop("extra_special_tokens", None)
            (path / leftover).write_text(json.dumps(config))
    (path / "special_tokens_map.json").write_text(json.dumps(special_map))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_layer=2, n_embd=32, n_head=2,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    GPT2LMHeadModel(config).save_pretrained(path)
    return path


def _llama_like(path: Path, tokenizer, model_type: str = "llama", **config_kwargs) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.for_model(
        model_type, vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256, head_dim=16,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, **config_kwargs,
    )
    return _save_model(path, AutoModelForCausalLM.from_config(config), tokenizer)


def smollm_llama(path: Path) -> Path:
    """SmolLM2's tokenizer layout: <|endoftext|> as BOS/EOS, chat and code markers as extra special tokens."""
    tokenizer = _fast_tokenizer(["<|endoftext|>", *SMOLLM_EXTRA], bos_token="<|endoftext|>",
                                eos_token="<|endoftext|>", extra_special_tokens=SMOLLM_EXTRA, model_max_length=256)
    return _llama_like(path, tokenizer)


def gemma_chat(path: Path) -> Path:
    extra = ["<start_of_turn>", "<end_of_turn>"]
    tokenizer = _fast_tokenizer(["<pad>", "<eos>", "<bos>", *extra], bos_token="<bos>", eos_token="<eos>",
                                pad_token="<pad>", extra_special_tokens=extra, chat_template=GEMMA_TEMPLATE,
                                model_max_length=256)
    path = _llama_like(path, tokenizer, "gemma")
    _write_eos_list(path, [tokenizer.convert_tokens_to_ids("<eos>"), tokenizer.convert_tokens_to_ids("<end_of_turn>")])
    return path


def qwen_chat(path: Path, *, generation: dict | None = None) -> Path:
    """Qwen2-Instruct's layout: ChatML, no BOS, <|endoftext|> as pad, and a turn that ends on <|im_end|> or
    <|endoftext|> (a list in generation_config.json). ``generation``: more generation_config.json values."""
    extra = ["<|im_start|>", "<|im_end|>"]
    tokenizer = _fast_tokenizer(["<|endoftext|>", *extra], eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                extra_special_tokens=extra, chat_template=CHATML_TEMPLATE, model_max_length=256)
    path = _llama_like(path, tokenizer, "qwen2")
    ids = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    _write_eos_list(path, ids, generation)
    return path


def plain_llama(path: Path, *, generation: dict | None = None) -> Path:
    """A base Llama (no chat template, no genre tokens) with an optional generation_config.json."""
    tokenizer = _fast_tokenizer(["<s>", "</s>", "<unk>"], bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                model_max_length=256)
    path = _llama_like(path, tokenizer)
    if generation:
        _write_eos_list(path, [tokenizer.eos_token_id], generation)
    return path


def _write_eos_list(path: Path, eos_ids: list[int], generation: dict | None = None) -> None:
    file = path / "generation_config.json"
    data = json.loads(file.read_text()) if file.is_file() else {}
    data.update(eos_token_id=eos_ids, **(generation or {}))
    file.write_text(json.dumps(data))


def bert_masked(path: Path) -> Path:
    import torch
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    tokenizer = _fast_tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], pad_token="[PAD]", unk_token="[UNK]",
                                cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    return _save_model(path, BertForMaskedLM(config), tokenizer)


def t5(path: Path) -> Path:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    tokenizer = _fast_tokenizer(["<pad>", "</s>", "<unk>"], pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16,
                      decoder_start_token_id=0)
    return _save_model(path, T5ForConditionalGeneration(config), tokenizer)


def storyterm_trained(path: Path, genres: Sequence[str] = CLASSIC_GENRES) -> Path:
    """A storyterm-trained checkpoint: the tiny GPT-2 plus the training_info.json training writes."""
    from tests.conftest import build_tiny_checkpoint

    build_tiny_checkpoint(path, genres)
    (path / "training_info.json").write_text(json.dumps({"name": path.name, "genres": list(genres)}))
    return path


# ---------------------------------------------------------------------------------------------------------------------
# The compatibility matrix's families

VOCAB_SIZE = 320
CONTEXT_WINDOW = 256  # as the families above: a story of a few hundred words is longer than the window
SLIDING_WINDOW = 16  # far inside the context window, so passages cross the window edge
_TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
         "max_position_embeddings": CONTEXT_WINDOW}


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[Path], Any]  # writes the checkpoint into an empty directory
    causal: bool = True  # False: not a decoder-only causal LM; storyterm must refuse it
    tokenizer: str = "byte-level BPE"  # or "Metaspace" (SentencePiece-style), "WordPiece", "Unigram"
    sliding_window: int | None = None  # on at least one layer
    chat_template: bool = False
    genre_tokens: bool = False  # the storyterm / original-project <BOS> <genre> layout
    note: str = ""


def build(name: str, parent: Path) -> Path:
    """Build family ``name`` into ``parent / name`` (reused if it is already there) and return that path."""
    path = parent / name
    if not (path / "config.json").is_file():
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        FAMILIES[name].build(path)
    return path


def _sliding_qwen2(path: Path) -> Path:
    extra = ["<|im_start|>", "<|im_end|>"]
    tokenizer = _fast_tokenizer(["<|endoftext|>", *extra], eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                extra_special_tokens=extra, chat_template=CHATML_TEMPLATE, model_max_length=256)
    return _llama_like(path, tokenizer, "qwen2", use_sliding_window=True, sliding_window=SLIDING_WINDOW,
                       max_window_layers=1)


def metaspace_bpe(special: Sequence[str], *, prepend: str = "first") -> Any:
    """A SentencePiece-style BPE (Llama-2, Mistral, Phi-3, Gemma): words start with ``▁``, byte fallback."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=prepend)
    backend.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme=prepend),
                                         decoders.ByteFallback(), decoders.Fuse()])
    byte_tokens = [f"<0x{value:02X}>" for value in range(256)]
    backend.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE + 256, special_tokens=["<unk>", *special, *byte_tokens], show_progress=False))
    return backend


def save_tokenizer(backend: Any, path: Path, *, tokenizer_class: str | None = None, chat_template: str | None = None,
                   **special: Any) -> Any:
    """Save ``backend`` as a fast tokenizer; ``tokenizer_class`` is what tokenizer_config.json names (as a real
    checkpoint of the family does)."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=CONTEXT_WINDOW, **special)
    if chat_template:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(path)
    if tokenizer_class:
        config_file = path / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8"))
        config["tokenizer_class"] = tokenizer_class
        config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return tokenizer


def _save_random(model_class: Any, config: Any, path: Path, seed: int = 0) -> None:
    import torch

    torch.manual_seed(seed)
    model_class(config).save_pretrained(path)


def _ids(tokenizer: Any, **tokens: str) -> dict[str, int]:
    return {f"{key}_token_id": tokenizer.convert_tokens_to_ids(token) for key, token in tokens.items()}


# ---------------------------------------------------------------------------------------------------------------------
# Builders


def _sentencepiece_llama(path: Path, *, sliding_window: int | None, model: str) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    tokenizer = save_tokenizer(metaspace_bpe(["<s>", "</s>"]), path, tokenizer_class="LlamaTokenizer",
                               bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    ids = _ids(tokenizer, bos="<s>", eos="</s>")
    if model == "mistral":
        config = MistralConfig(vocab_size=len(tokenizer), num_key_value_heads=1, sliding_window=sliding_window,
                               **ids, **_TINY)
        _save_random(MistralForCausalLM, config, path)
    else:
        _save_random(LlamaForCausalLM, LlamaConfig(vocab_size=len(tokenizer), num_key_value_heads=1, **ids, **_TINY),
                    path)


def _gpt_neox(path: Path) -> None:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    tokenizer = save_tokenizer(_bpe(["<|endoftext|>", "<|padding|>"]), path,
                               tokenizer_class="GPTNeoXTokenizer", bos_token="<|endoftext|>",
                               eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    config = GPTNeoXConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, max_position_embeddings=CONTEXT_WINDOW,
                           **_ids(tokenizer, bos="<|endoftext|>", eos="<|endoftext|>"))
    _save_random(GPTNeoXForCausalLM, config, path)


def _opt(path: Path) -> None:
    from transformers import OPTConfig, OPTForCausalLM

    tokenizer = save_tokenizer(_bpe(["<s>", "<pad>", "</s>", "<unk>"]), path,
                               tokenizer_class="GPT2Tokenizer", bos_token="</s>", eos_token="</s>",
                               pad_token="<pad>", unk_token="</s>")
    config = OPTConfig(vocab_size=len(tokenizer), hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                       num_attention_heads=2, word_embed_proj_dim=32, max_position_embeddings=CONTEXT_WINDOW,
                       **_ids(tokenizer, bos="</s>", eos="</s>", pad="<pad>"))
    _save_random(OPTForCausalLM, config, path)


def _phi3(path: Path) -> None:
    from transformers import Phi3Config, Phi3ForCausalLM

    tokenizer = save_tokenizer(metaspace_bpe(["<s>", "</s>", "<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>"]),
                               path, tokenizer_class="LlamaTokenizer", bos_token="<s>", eos_token="<|endoftext|>",
                               unk_token="<unk>", pad_token="<|endoftext|>")
    config = Phi3Config(vocab_size=len(tokenizer), num_key_value_heads=2, sliding_window=SLIDING_WINDOW,
                        original_max_position_embeddings=CONTEXT_WINDOW,
                        **_ids(tokenizer, bos="<s>", eos="<|endoftext|>", pad="<|endoftext|>"), **_TINY)
    _save_random(Phi3ForCausalLM, config, path)


def _gemma2(path: Path) -> None:
    """Gemma-2: sliding-window and global layers interleaved."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    tokenizer = save_tokenizer(metaspace_bpe(["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"],
                                             prepend="never"),
                               path, tokenizer_class="GemmaTokenizer", chat_template=GEMMA_TEMPLATE,
                               bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
                               extra_special_tokens=["<start_of_turn>", "<end_of_turn>"])
    config = Gemma2Config(vocab_size=len(tokenizer), num_key_value_heads=1, head_dim=16,
                          sliding_window=SLIDING_WINDOW, layer_types=["sliding_attention", "full_attention"],
                          **_ids(tokenizer, bos="<bos>", eos="<eos>", pad="<pad>"), **_TINY)
    _save_random(Gemma2ForCausalLM, config, path)


def _bloom(path: Path) -> None:
    from transformers import BloomConfig, BloomForCausalLM

    tokenizer = save_tokenizer(_bpe(["<unk>", "<s>", "</s>", "<pad>"]), path,
                               tokenizer_class="BloomTokenizer", bos_token="<s>", eos_token="</s>",
                               pad_token="<pad>", unk_token="<unk>")
    config = BloomConfig(vocab_size=len(tokenizer), hidden_size=32, n_layer=2, n_head=2,
                         **_ids(tokenizer, bos="<s>", eos="</s>", pad="<pad>"))
    _save_random(BloomForCausalLM, config, path)


FAMILIES: dict[str, Family] = {family.name: family for family in [
    Family("storyterm-trained", storyterm_trained, genre_tokens=True,
           note="a checkpoint storyterm's training writes (training_info.json lists its genres)"),
    Family("gpt2-genre", lambda p: original_gpt2(p, "fast"), genre_tokens=True,
           note="the original project's gpt2-genre-story-generator layout, tokenizer.json"),
    Family("gpt2-genre-vocab-merges", lambda p: original_gpt2(p, "slow"), genre_tokens=True,
           note="the same with vocab.json + merges.txt + added_tokens.json (no tokenizer.json)"),
    Family("llama-smollm2", smollm_llama,
           note="Llama, byte-level BPE with SmolLM2-style code and chat tokens"),
    Family("llama-sentencepiece", lambda p: _sentencepiece_llama(p, sliding_window=None, model="llama"),
           tokenizer="Metaspace", note="Llama-2 / TinyLlama-style SentencePiece tokenizer"),
    Family("mistral", lambda p: _sentencepiece_llama(p, sliding_window=None, model="mistral"), tokenizer="Metaspace",
           note="Mistral without a sliding window (v0.2 and later)"),
    Family("mistral-sliding", lambda p: _sentencepiece_llama(p, sliding_window=SLIDING_WINDOW, model="mistral"),
           tokenizer="Metaspace", sliding_window=SLIDING_WINDOW, note="Mistral-7B-v0.1-style sliding window"),
    Family("qwen2-chat", qwen_chat, chat_template=True, note="Qwen2 instruct: ChatML template, two EOS ids"),
    Family("qwen2-sliding", _sliding_qwen2, chat_template=True,
           sliding_window=SLIDING_WINDOW, note="Qwen2 with use_sliding_window (full first layer)"),
    Family("gpt-neox", _gpt_neox, note="Pythia / GPT-NeoX"),
    Family("opt", _opt, note="OPT: </s> doubles as BOS"),
    Family("phi3", _phi3, tokenizer="Metaspace", sliding_window=SLIDING_WINDOW,
           note="Phi-3-mini-4k-style: SentencePiece tokenizer, sliding window on every layer"),
    Family("gemma2", _gemma2, tokenizer="Metaspace", sliding_window=SLIDING_WINDOW, chat_template=True,
           note="Gemma-2: interleaved sliding and global layers, <start_of_turn> tokens"),
    Family("gemma-chat", gemma_chat, chat_template=True, note="Gemma instruct: <start_of_turn> template, two EOS ids"),
    Family("bloom", _bloom, note="Bloom: ALiBi positions (no position limit in the config)"),
    Family("bert", bert_masked, causal=False, tokenizer="WordPiece", note="masked LM: must be refused"),
    Family("t5", t5, causal=False, tokenizer="Unigram", note="encoder-decoder: must be refused"),
]}
CAUSAL_FAMILIES = [name for name, family in FAMILIES.items() if family.causal]
REFUSED_FAMILIES = [name for name, family in FAMILIES.items() if not family.causal]
