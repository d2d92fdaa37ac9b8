#!/usr/bin/env python
"""Where a decode step's time goes on this CPU (issue 17, step 1), for a GPT-2-124M-shaped model with random weights.

    python benchmarks/profile_decode.py [--new-tokens 64] [--runs 3] [--dtypes fp32,int8] [--checkpoint DIR]

Each row adds one layer on top of the one above, all greedy from the same prompt with the same cache type, so the
difference between two rows is what that layer costs per token:

1. forward only: a loop of ``model(next_id, past_key_values)`` calls (the weights, attention, the LM head);
2. ``model.generate`` greedy: plus HF's decode loop (stopping criteria, cache bookkeeping, argmax);
3. ``model.generate`` sampling with the engine's settings (temperature, top-k, top-p, min-p, repetition penalty):
   plus the logits processors and the multinomial draw;
4. the storyterm engine (streaming through ``TextIteratorStreamer`` in a worker thread, word guard, passage
   trimming off): plus streaming, detokenizing and storyterm's processors.

Inside row 1, ``torch.profiler`` splits the forward into matrix products (``addmm``/``mm``/``linear``, quantized
linear), attention (``scaled_dot_product_attention`` and its parts) and everything else (layer norms, GELU, adds,
views, the embedding). Everything runs in a worker thread, as the engine's generation does. Printed as markdown tables (median ms per token of ``--runs`` runs after a warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "benchmarks")]

PROMPT = "After the bank job goes wrong, the crew hides in an old warehouse by the docks and waits for"
MATMUL_OPS = ("aten::addmm", "aten::mm", "aten::linear", "aten::matmul", "quantized::linear_dynamic",
              "quantized::linear", "aten::bmm", "aten::baddbmm")
ATTENTION_OPS = ("aten::scaled_dot_product_attention", "aten::_scaled_dot_product_flash_attention_for_cpu",
                 "aten::_scaled_dot_product_attention_math", "aten::_softmax")


def in_worker_thread(function):
    """Run ``function`` in a worker thread, as the engine generates: under CPU contention torch's thread pool
    behaves very differently in the main thread (seen here: fp32 forward 3× slower there)."""
    result: list = []
    worker = threading.Thread(target=lambda: result.append(function()))
    worker.start()
    worker.join()
    return result[0]


def per_token_ms(run, new_tokens: int, runs: int) -> float:
    def measure() -> float:
        run()  # warm-up
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            made = run()  # the engine says how many tokens it made (an early EOS); the others make new_tokens
            times.append((time.perf_counter() - started) * 1000 / (made or new_tokens))
        return statistics.median(times)

    return in_worker_thread(measure)


def forward_loop(model, input_ids, new_tokens: int):
    import torch
    from transformers import DynamicCache

    def run() -> None:
        with torch.inference_mode():
            cache = DynamicCache()
            out = model(input_ids=input_ids, cache=cache, use_cache=True)
            next_id = out.logits[:, -1:].argmax(-1)
            for _ in range(new_tokens - 1):  # the cache object is filled in place
                out = model(input_ids=next_id, cache=cache, use_cache=True)
                next_id = out.logits[:, -1:].argmax(-1)

    return run


def forward_breakdown(model, input_ids, new_tokens: int) -> dict[str, float]:
    """ms per token in matmuls / attention / other ops, from torch.profiler's self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    run = forward_loop(model, input_ids, new_tokens)

    def profiled():
        run()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run()
        return prof

    prof = in_worker_thread(profiled)
    buckets = {"matrix products": 0.0, "attention": 0.0, "other ops": 0.0}
    for event in prof.key_averages():
        ms = event.self_cpu_time_total / 1000 / new_tokens
        if event.key in MATMUL_OPS:
            buckets["matrix products"] += ms
        elif event.key in ATTENTION_OPS or "attention" in event.key:
            buckets["attention"] += ms
        else:
            buckets["other ops"] += ms
    return buckets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dtypes", default="fp32,int8")
    parser.add_argument("--checkpoint", type=Path, help="a GPT-2-124M-shaped checkpoint from an earlier run")
    args = parser.parse_args()

    import torch
    from bench_generation import build_checkpoint

    from storyterm.engine.generation import GenerationRequest, StoryEngine
    from storyterm.engine.loading import ModelSpec, load_model

    checkpoint = args.checkpoint or build_checkpoint(Path(tempfile.mkdtemp(prefix="storyterm-profile-")) / "gpt2")
    n = args.new_tokens
    print(f"GPT-2 124M shape, random weights; {n} new tokens after a {len(PROMPT)}-character prompt; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.runs} runs, ms per token\n")
    for dtype in args.dtypes.split(","):
        loaded = load_model(ModelSpec(str(checkpoint), device="cpu", dtype=dtype))
        engine = StoryEngine(loaded)
        model, tokenizer = loaded.model, loaded.tokenizer
        input_ids = tokenizer(PROMPT, return_tensors="pt").input_ids
        settings = loaded.generation_defaults.with_changes(max_new_tokens=n, seed=1, word_guard=False,
                                                           trim_sentences=False)
        config = engine.generation_config(settings, input_ids.shape[1])
        greedy = config.__class__(**{**config.to_dict(), "do_sample": False, "min_new_tokens": n,
                                     "max_new_tokens": n, "repetition_penalty": 1.0})
        sampling = config.__class__(**{**config.to_dict(), "min_new_tokens": n, "max_new_tokens": n})

        def generate_with(generation_config):
            def run() -> None:
                torch.manual_seed(1)
                with torch.inference_mode():
                    model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                                   generation_config=generation_config)
            return run

        def engine_run() -> int:
            engine.forget_context()
            genre = loaded.genres[0] if loaded.genres else None
            return engine.generate(GenerationRequest(genre, PROMPT, settings=settings)).stats.new_tokens

        rows = [
            ("1. forward only (loop of model calls, KV cache)", per_token_ms(forward_loop(model, input_ids, n), n,
                                                                             args.runs)),
            ("2. + HF generate loop, greedy", per_token_ms(generate_with(greedy), n, args.runs)),
            ("3. + sampling processors (engine's settings)", per_token_ms(generate_with(sampling), n, args.runs)),
            ("4. + storyterm engine (streamer thread, detokenize)", per_token_ms(engine_run, n, args.runs)),
        ]
        breakdown = forward_breakdown(model, input_ids, n)
        print(f"### {dtype} ({loaded.dtype})\n")
        print("| layer | ms/token | tok/s | this layer adds |")
        print("|---|---:|---:|---:|")
        previous = None
        for label, ms in rows:
            added = "" if previous is None else f"{ms - previous:+.2f} ms ({(ms - previous) / ms:+.0%})"
            print(f"| {label} | {ms:.2f} | {1000 / ms:.1f} | {added} |")
            previous = ms
        total = sum(breakdown.values())
        print("\n| inside the forward (torch.profiler, self CPU time) | ms/token | share |")
        print("|---|---:|---:|")
        for name, ms in breakdown.items():
            print(f"| {name} | {ms:.2f} | {ms / total:.0%} |")
        print(f"| Python and dispatch (row 1 minus the ops) | {max(0.0, rows[0][1] - total):.2f} | — |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
