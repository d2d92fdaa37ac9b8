"""Write a storyterm GPT-2 checkpoint (built-in or trained with ``training/``) as a GGUF file for llama.cpp.

    python -m training.export_gguf CHECKPOINT_DIR OUT.gguf [--outtype f32|f16|q8_0|q6_k|q5_k_m|q4_k_m|q4_0]

llama.cpp's own ``convert_hf_to_gguf.py`` recognises a BPE tokenizer by hashing how it splits a test string and
refuses one trained from scratch, as storyterm's are. Those are byte-level BPE with GPT-2's split rule (``gpt-2``
in llama.cpp), so this writes the file directly with the ``gguf`` package (``pip install gguf``): GPT-2's tensors
under llama.cpp's names, the vocabulary with its merges, and the special tokens (``<BOS>``, ``<EOS>``, the genre
tokens) as control tokens, so ``storyterm --model OUT.gguf`` keeps the checkpoint's genres, its sampling defaults
(``general.sampling.*``) and its word list (``words.txt`` as ``storyterm.words``: the word guard works on the file).

The smaller types (the k-quants ``q6_k``, ``q5_k_m``, ``q4_k_m``, and ``q4_0``, which llama.cpp repacks for its
fastest CPU kernels) are made by llama.cpp itself, through llama-cpp-python (``pip install 'storyterm[gguf]'``), from
an f32 file written first and removed after.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

WRITTEN_TYPES = ("f32", "f16", "q8_0")
# llama.cpp's quantizer makes these (the names of llama-quantize, lower-case): the f32 file is its input.
QUANTIZED_TYPES = {"q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K", "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
                   "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}
OUT_TYPES = WRITTEN_TYPES + tuple(QUANTIZED_TYPES)


def export_gguf(checkpoint: Path | str, out: Path | str, outtype: str = "f32") -> Path:
    """Write ``checkpoint`` (a GPT-2 checkpoint directory) to ``out``. ValueError for anything else."""
    import gguf
    from transformers import AutoTokenizer, GPT2LMHeadModel

    if outtype not in OUT_TYPES:
        raise ValueError(f"--outtype must be one of {', '.join(OUT_TYPES)}, got {outtype!r}")
    if outtype in QUANTIZED_TYPES:
        return _export_quantized(Path(checkpoint), Path(out), outtype)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the file is written in seconds; bars would clutter the output
    checkpoint, out = Path(checkpoint), Path(out)
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "gpt2":
        raise ValueError(f"only GPT-2 checkpoints can be exported, {checkpoint} is {config.get('model_type')!r}")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = GPT2LMHeadModel.from_pretrained(checkpoint, dtype="float32")
    hp = model.config

    writer = gguf.GGUFWriter(out, "gpt2")
    writer.add_name(checkpoint.resolve().name)
    writer.add_block_count(hp.n_layer)
    writer.add_context_length(hp.n_positions)
    writer.add_embedding_length(hp.n_embd)
    writer.add_feed_forward_length(hp.n_inner or 4 * hp.n_embd)
    writer.add_head_count(hp.n_head)
    writer.add_layer_norm_eps(hp.layer_norm_epsilon)
    writer.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                          "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype])
    _add_vocabulary(writer, tokenizer, hp.vocab_size)
    _add_sampling(writer, checkpoint)
    _add_known_words(writer, checkpoint)
    for name, tensor in _gguf_tensors(model.state_dict(), hp.n_layer):
        _add_tensor(writer, name, tensor, outtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _export_quantized(checkpoint: Path, out: Path, outtype: str) -> Path:
    try:
        import llama_cpp
    except ImportError:
        raise ImportError(f"--outtype {outtype} is made by llama.cpp: pip install 'storyterm[gguf]' "
                          "(or export f32 and run llama-quantize)") from None
    from storyterm.engine.gguf_loading import last_llama_cpp_error, quiet_llama_cpp

    source = out.with_name(out.name + ".f32.part")
    try:
        export_gguf(checkpoint, source, "f32")
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, QUANTIZED_TYPES[outtype])
        with quiet_llama_cpp():
            failed = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params)
        if failed:
            out.unlink(missing_ok=True)
            raise ValueError(f"llama.cpp could not quantize to {outtype}{last_llama_cpp_error()}")
    finally:
        source.unlink(missing_ok=True)
    return out


def _add_vocabulary(writer: Any, tokenizer: Any, vocab_size: int) -> None:
    import gguf

    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    tokens, types = [], []
    for index in range(vocab_size):
        token = by_id.get(index)
        if token is None:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if token in added else gguf.TokenType.NORMAL)
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"only byte-level BPE tokenizers can be exported, this one is {model.get('type')!r}")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for setter, token_id in ((writer.add_bos_token_id, tokenizer.bos_token_id),
                             (writer.add_eos_token_id, tokenizer.eos_token_id),
                             (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if token_id is not None:
            setter(int(token_id))
    writer.add_add_bos_token(False)  # storyterm writes its own header
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)


def _add_sampling(writer: Any, checkpoint: Path) -> None:
    """generation_config.json's sampling as GGUF's general.sampling.* (storyterm reads them as the file's defaults);
    greedy (do_sample false) is a temperature of 0, as in llama.cpp."""
    try:
        config = json.loads((checkpoint / "generation_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if config.get("do_sample") is False:
        writer.add_sampling_temp(0.0)
    elif isinstance(config.get("temperature"), (int, float)):
        writer.add_sampling_temp(float(config["temperature"]))
    for key, setter in (("top_k", writer.add_sampling_top_k), ("top_p", writer.add_sampling_top_p),
                        ("min_p", writer.add_sampling_min_p),
                        ("repetition_penalty", writer.add_sampling_penalty_repeat)):
        if isinstance(config.get(key), (int, float)):
            setter(config[key])


def _add_known_words(writer: Any, checkpoint: Path) -> None:
    """words.txt as one string: llama.cpp hands a file's string values to storyterm, never its arrays."""
    from storyterm.engine.words import GGUF_WORDS_KEY, WORDS_FILE

    try:
        text = (checkpoint / WORDS_FILE).read_text(encoding="utf-8")
    except OSError:
        return  # a checkpoint without a word list: so is its GGUF file
    if text.strip():
        writer.add_string(GGUF_WORDS_KEY, text)


def _gguf_tensors(state: dict[str, Any], n_layer: int):
    """(llama.cpp name, float32 array) in GGUF's layout. GPT-2's Conv1D weights are stored (in, out): transposed."""
    def array(key: str, transpose: bool = False):
        tensor = state[key].detach().float()
        return (tensor.T if transpose else tensor).contiguous().numpy()

    yield "token_embd.weight", array("transformer.wte.weight")
    yield "position_embd.weight", array("transformer.wpe.weight")
    for i in range(n_layer):
        h = f"transformer.h.{i}."
        for ours, theirs, transposed in (("attn_norm", "ln_1", False), ("attn_qkv", "attn.c_attn", True),
                                         ("attn_output", "attn.c_proj", True), ("ffn_norm", "ln_2", False),
                                         ("ffn_up", "mlp.c_fc", True), ("ffn_down", "mlp.c_proj", True)):
            yield f"blk.{i}.{ours}.weight", array(h + theirs + ".weight", transposed)
            yield f"blk.{i}.{ours}.bias", array(h + theirs + ".bias")
    yield "output_norm.weight", array("transformer.ln_f.weight")
    yield "output_norm.bias", array("transformer.ln_f.bias")
    # lm_head is tied to token_embd: llama.cpp reuses that tensor when "output.weight" is absent.


def _add_tensor(writer: Any, name: str, data: Any, outtype: str) -> None:
    import gguf

    qtype = gguf.GGMLQuantizationType.F32
    # Matrices only (norms, biases and the position table stay fp32), and q8_0 only on whole 32-value blocks.
    if data.ndim == 2 and name != "position_embd.weight":
        if outtype == "f16":
            qtype = gguf.GGMLQuantizationType.F16
        elif outtype == "q8_0" and data.shape[-1] % 32 == 0:
            qtype = gguf.GGMLQuantizationType.Q8_0
    writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export_gguf", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path,
                        help="a GPT-2 checkpoint directory (e.g. src/storyterm/models/builtin)")
    parser.add_argument("out", type=Path, help="the .gguf file to write")
    parser.add_argument("--outtype", choices=OUT_TYPES, default="f32", help="weight type (default: f32)")
    args = parser.parse_args(argv)
    try:
        export_gguf(args.checkpoint, args.out, args.outtype)
    except (OSError, ValueError, ImportError) as error:
        print(f"export_gguf: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {args.outtype})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
