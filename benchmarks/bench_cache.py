"""Static KV cache sizing (issue 13 item 4): a passage on a small Llama whose config allows 131 072 positions, with the
static cache sized to the model's maximum context (before) and to prompt + passage (now), next to the same weights
with 8 192 positions. Prints a markdown table; every variant runs in its own process so peak memory is its own.

    python benchmarks/bench_cache.py [--runs 3] [--prompt-tokens 600] [--new-tokens 100]

Random weights (speed only); ``min_new_tokens`` equals ``max_new_tokens`` so EOS cannot end a run early; greedy.
The prompt is long enough for the engine to choose a static cache on a CPU (generation.STATIC_CACHE_MIN_PROMPT_TOKENS).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = [  # (label, max_position_embeddings, static cache sized to the model's maximum)
    ("131 072 positions, cache = model maximum (before)", 131_072, True),
    ("131 072 positions, cache = prompt + passage (now)", 131_072, False),
    ("8 192 positions, cache = model maximum (before)", 8_192, True),
    ("8 192 positions, cache = prompt + passage (now)", 8_192, False),
]


def build(path: Path, positions: int) -> Path:
    """A ~19 M-parameter Llama (6 layers, 320 wide, 16 000 ids) with a byte-level BPE; same weights for any length."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {char: index for index, char in enumerate(["<s>", "</s>", *alphabet])}
    for first in alphabet:
        for second in alphabet:
            if len(vocab) >= 16_000:
                break
            vocab.setdefault(first + second, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=320, intermediate_size=1024, num_hidden_layers=6,
                         num_attention_heads=5, num_key_value_heads=5, max_position_embeddings=positions,
                         bos_token_id=0, eos_token_id=1)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def run_variant(checkpoint: Path, model_maximum: bool, runs: int, prompt_tokens: int, new_tokens: int) -> dict:
    from storyterm.engine import kv_cache
    from storyterm.engine.generation import GenerationRequest, StoryEngine
    from storyterm.engine.loading import ModelSpec, load_model
    from storyterm.engine.settings import SamplerSettings

    loaded = load_model(ModelSpec(str(checkpoint), device="cpu", dtype="fp32"))
    if model_maximum:  # the sizing before issue 13: the whole context window
        kv_cache.static_capacity = lambda prompt, new, window: window
    engine = StoryEngine(loaded, generate_overrides={"min_new_tokens": new_tokens})
    story = " ".join(f"word{i % 97}" for i in range(prompt_tokens))
    ids = engine.prepare(GenerationRequest(None, story)).input_ids
    settings = SamplerSettings(max_new_tokens=new_tokens, do_sample=False)
    request = GenerationRequest(None, engine.loaded.tokenizer.decode(ids[-prompt_tokens:]), settings=settings)
    first, speed = [], []
    for run in range(runs + 1):  # the first run warms up
        engine.forget_context()  # every run reads its prompt afresh into a new cache
        result = engine.generate(request)
        if run:
            first.append(result.stats.time_to_first_token_s)
            speed.append(result.stats.tokens_per_second)
    return {"prompt_tokens": result.stats.prompt_tokens, "static": engine._wants_static_cache(
        result.stats.prompt_tokens), "capacity": kv_cache.static_capacity(
        result.stats.prompt_tokens, new_tokens, loaded.context_window), "first": first, "speed": speed,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def span(values: list[float], digits: int) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=600)
    parser.add_argument("--new-tokens", type=int, default=100)
    parser.add_argument("--child", nargs=2, metavar=("CHECKPOINT", "MODEL_MAXIMUM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figures = run_variant(Path(args.child[0]), args.child[1] == "1", args.runs, args.prompt_tokens,
                              args.new_tokens)
        print(json.dumps(figures))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        checkpoints = {positions: build(Path(folder) / f"llama-{positions}", positions)
                       for positions in sorted({v[1] for v in VARIANTS})}
        for label, positions, model_maximum in VARIANTS:
            print(f"running: {label}", file=sys.stderr, flush=True)
            command = [sys.executable, __file__, "--runs", str(args.runs), "--prompt-tokens", str(args.prompt_tokens),
                       "--new-tokens", str(args.new_tokens), "--child", str(checkpoints[positions]),
                       "1" if model_maximum else "0"]
            output = subprocess.run(command, check=True, capture_output=True, text=True,
                                    env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}).stdout
            rows.append((label, json.loads(output.strip().splitlines()[-1])))
    print(f"\nPrompt {rows[0][1]['prompt_tokens']} tokens, {args.new_tokens} new tokens, greedy, fp32, CPU; "
          f"median (min–max) of {args.runs} runs\n")
    print("| variant | cache tokens | tokens/s | first token (s) | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    for label, figures in rows:
        capacity = figures["capacity"] if figures["static"] else "dynamic"
        print(f"| {label} | {capacity} | {span(figures['speed'], 1)} | {span(figures['first'], 2)} | "
              f"{figures['peak_mib']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
