#!/usr/bin/env python
"""Perplexity of the built-in model's GGUF exports (f32, q8_0, and llama.cpp's smaller types) against its torch fp32
weights, on held-out text (issue 17: within +1 % of fp32). Not run in CI.

    python benchmarks/gguf_perplexity.py [--checkpoint src/storyterm/models/builtin]
        [--eval-file build/data/plots/eval.txt] [--types q8_0,q6_k,q5_k_m,q4_k_m,q4_0] [--llama-quantize PATH]
        [--scratch DIR]

The checkpoint is exported with ``training/export_gguf.py`` to f32 and q8_0 (storyterm's own q8_0, written by the
``gguf`` package) and to those of ``--types`` it makes through llama-cpp-python (q6_k, q5_k_m, q4_k_m), and the f32
file is also quantized to each of ``--types`` by llama.cpp's ``llama-quantize`` (what a writer gets from llama.cpp's
tools; a k-quant falls back to another type for tensors whose rows are not a multiple of
256 values, which llama-quantize reports and the table counts). Every variant scores exactly the same tokens as
``training/evaluate.py``'s perplexity: each held-out line (``<BOS> <genre> story <EOS>``) tokenized whole, windows
of the model's context that keep the header (overlapping by half; each story token counted once), the NLL of every
story token and the end token. The
torch row is ``training.evaluate.language_model_metrics`` itself; the GGUF rows read each window through
llama-cpp-python with logits for every position (``logits_all``), 1 thread. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

LLAMA_QUANTIZE = Path("/work/build/src/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-quantize")


def gguf_nll(path: Path, windows, context: int) -> float:
    """Summed NLL (nats) of the scored tokens of every window, through llama.cpp."""
    import llama_cpp
    import numpy as np

    from storyterm.engine.gguf_loading import quiet_llama_cpp

    with quiet_llama_cpp():
        llama = llama_cpp.Llama(model_path=str(path), n_ctx=context, n_batch=context, n_ubatch=context,
                                logits_all=True, n_threads=1, n_threads_batch=1, verbose=False)
    total = 0.0
    try:
        for window in windows:
            llama.reset()
            llama.eval(window.ids)
            logits = np.asarray(llama.scores[: len(window.ids) - 1], dtype=np.float64)
            peak = logits.max(axis=-1, keepdims=True)
            log_probs = logits - peak - np.log(np.exp(logits - peak).sum(axis=-1, keepdims=True))
            targets = np.asarray(window.ids[1:])
            token_nll = -log_probs[np.arange(len(targets)), targets]
            total += float(token_nll[window.score_from - 1:].sum())
    finally:
        llama.close()
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "src/storyterm/models/builtin")
    parser.add_argument("--eval-file", type=Path, default=ROOT / "build/data/plots/eval.txt")
    parser.add_argument("--llama-quantize", type=Path, default=Path(os.environ.get("LLAMA_QUANTIZE", LLAMA_QUANTIZE)))
    parser.add_argument("--types", default="q8_0", help="llama-quantize types, comma-separated (default: q8_0)")
    parser.add_argument("--scratch", type=Path, help="write the GGUF files here (default: a temporary folder)")
    args = parser.parse_args()
    import torch

    from storyterm.engine.loading import ModelSpec, load_model
    from training.common import read_stories
    from training.data import tokenize_stories
    from training.evaluate import language_model_metrics, story_windows
    from training.export_gguf import QUANTIZED_TYPES, export_gguf

    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="storyterm-gguf-ppl-"))
    scratch.mkdir(parents=True, exist_ok=True)
    loaded = load_model(ModelSpec(str(args.checkpoint), device="cpu", dtype="fp32"))
    torch.set_num_threads(1)
    stories = [s for s in read_stories([args.eval_file]) if s.genre in loaded.genres]
    tokenized = tokenize_stories(stories, loaded.tokenizer)
    context = loaded.context_window
    windows = [w for story in tokenized for w in story_windows(story, context)]
    tokens = sum(len(s.body) for s in tokenized)
    pad_id = loaded.tokenizer.pad_token_id or 0
    rows = []
    metrics = language_model_metrics(loaded.model, tokenized, context, pad_id, progress=False)
    rows.append(("torch fp32 (training/evaluate.py)", metrics["loss"] * tokens, None))
    files = {"GGUF f32 (export_gguf)": export_gguf(args.checkpoint, scratch / "builtin-f32.gguf", "f32"),
             "GGUF q8_0 (export_gguf)": export_gguf(args.checkpoint, scratch / "builtin-q8_0.gguf", "q8_0")}
    fallbacks: dict[str, int] = {}
    for kind in [t.strip().lower() for t in args.types.split(",") if t.strip().lower() in QUANTIZED_TYPES]:
        files[f"GGUF {kind.upper()} (export_gguf --outtype {kind})"] = export_gguf(
            args.checkpoint, scratch / f"builtin-{kind}.gguf", kind)
    if args.llama_quantize.is_file():
        for kind in [t.strip() for t in args.types.split(",") if t.strip()]:
            out = scratch / f"builtin-{kind.lower()}-llama-quantize.gguf"
            done = subprocess.run([str(args.llama_quantize), str(files["GGUF f32 (export_gguf)"]), str(out),
                                   kind.upper()], check=True, capture_output=True, text=True)
            name = f"GGUF {kind.upper()} (f32 file → llama-quantize)"
            files[name] = out
            fallbacks[name] = sum("fallback" in line for line in (done.stdout + done.stderr).splitlines())
    else:
        print(f"(no llama-quantize at {args.llama_quantize}: that row is left out)", file=sys.stderr)
    for name, path in files.items():
        rows.append((name, gguf_nll(path, windows, context), path.stat().st_size))
    fp32 = rows[0][1]
    print(f"{args.checkpoint.name} ({loaded.model.num_parameters() / 1e6:.1f} M parameters), {len(tokenized)} "
          f"held-out stories of {args.eval_file}, {tokens} scored tokens, windows of {context}\n")
    print("| weights | file | perplexity | Δ vs torch fp32 | tensors in a fallback type |")
    print("|---|---:|---:|---:|---:|")
    for name, nll, size in rows:
        perplexity = math.exp(nll / tokens)
        change = "—" if nll == fp32 else f"{(math.exp((nll - fp32) / tokens) - 1) * 100:+.2f} %"
        file = "—" if size is None else f"{size / 2**20:.1f} MiB"
        print(f"| {name} | {file} | {perplexity:.3f} | {change} | {fallbacks.get(name, '—')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
