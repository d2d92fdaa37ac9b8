"""Where the GGUF engine's gap to llama-bench lies (issue 17): llama-bench, a bare ``llama_decode`` loop on the
engine's own llama.cpp context (one token a step, no sampling, no Python between steps) and the engine's streamed
passage, interleaved, at 1 thread. If the bare loop matches llama-bench, the gap is storyterm's loop, not how
llama-cpp-python sets up the context.

    python benchmarks/gguf_gap.py MODEL.gguf [--runs 5] [--new-tokens 64] [--switch-interval S]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_side_by_side import (  # noqa: E402 - after the path
    find_llama_bench,
    gguf_engine,
    gguf_engine_tokens_per_s,
    llama_bench_tokens_per_s,
)


def bare_decode_tokens_per_s(llama, new_tokens: int) -> float:
    """tok/s of ``new_tokens`` single-token ``llama_decode`` calls on ``llama``'s context, the cache cleared first."""
    import llama_cpp

    ctx = llama.ctx
    llama_cpp.llama_set_n_threads(ctx, 1, 2)
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
    batch = llama_cpp.llama_batch_init(1, 0, 1)
    try:
        def step(token: int, position: int) -> None:
            batch.n_tokens = 1
            batch.token[0], batch.pos[0], batch.n_seq_id[0], batch.seq_id[0][0] = token, position, 1, 0
            batch.logits[0] = True
            llama_cpp.llama_decode(ctx, batch)

        step(1, 0)
        started = time.perf_counter()
        for position in range(1, new_tokens + 1):
            step(100 + position, position)
        return new_tokens / (time.perf_counter() - started)
    finally:
        llama_cpp.llama_batch_free(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gguf", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval for the engine's threads")
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    binary = find_llama_bench(None)
    engine, request = gguf_engine(args.gguf, args.new_tokens)
    rates: dict[str, list[float]] = {"llama-bench": [], "bare llama_decode loop": [], "storyterm GGUF engine": []}
    for run in range(args.runs):
        rates["llama-bench"].append(llama_bench_tokens_per_s(binary, args.gguf, 1, args.new_tokens))
        rates["bare llama_decode loop"].append(bare_decode_tokens_per_s(engine.loaded.model.llama, args.new_tokens))
        rates["storyterm GGUF engine"].append(gguf_engine_tokens_per_s(engine, request, 1, run))
    print(f"| {args.gguf.name}, 1 thread | tok/s (median of {args.runs}) | ms a token | runs |")
    print("|---|---:|---:|---|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {1000 / median:.2f} | {', '.join(f'{v:.1f}' for v in values)} |")


if __name__ == "__main__":
    main()
