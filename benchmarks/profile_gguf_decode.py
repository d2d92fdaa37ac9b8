#!/usr/bin/env python
"""Where a decode step of the GGUF engine (``LlamaCppEngine``) spends its time (issue 17). Not run in CI.

    python benchmarks/profile_gguf_decode.py MODEL.gguf [--new-tokens 64] [--runs 3] [--threads 1]

Two tables, printed as markdown:

1. The engine's passage (default sampling settings, sentence trimming on, a seed per run, streamed to a consumer
   thread as the editor does), under ``cProfile`` in the generation thread, split by what the time went to:
   ``llama_decode`` (llama-cpp-python's ``eval``), sampling (llama.cpp's chain, or before issue 17 llama-cpp-python's
   ``sample`` minus the Python processors), the Python logits processors (with logits copied out of llama.cpp),
   stopping criteria (sentence end, stop sequences), the streamer (its detokenizing and waking the consumer) and the
   rest of the loop. ms per new token, median of ``--runs``; the profiler inflates the Python rows a little.
2. Without the profiler: decode ms per token of the engine, of a bare ``llama_decode`` loop (no sampling: what
   ``llama-bench`` tg measures) and of the bare loop plus llama.cpp's sampler chain with the engine's settings.
3. The generation thread's CPU time per token (``time.thread_time``, no profiler): in llama.cpp's decode, and the
   rest of the loop. On a shared machine this moves far less with load than the wall-clock rows.

Run it against another checkout's ``src`` (``PYTHONPATH=that/src``) to profile that version of the engine: the
groups are found by function name in both the old (``_TorchLogits`` inside ``Llama.generate``) and new loop.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path and not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(ROOT / "src"))

STORY = "The night ferry left without its captain."
# (group, file suffix, function name): cumulative times; "sampling" has the processors taken out below
GROUPS = (
    ("llama_decode", "llama_cpp/_internals.py", "decode"),  # through Llama.eval or the engine's _decode_next
    ("sampling (llama.cpp chain)", "llama_cpp/llama.py", "sample"),
    ("sampling (llama.cpp chain)", "engine/llama_cpp_sampling.py", "sample"),
    ("Python logits processors", "engine/llama_cpp_backend.py", "__call__"),  # the old _TorchLogits
    ("Python logits processors", "engine/llama_cpp_backend.py", "_run_hooks"),
    ("stopping criteria", "engine/passage.py", "__call__"),
    ("stopping criteria", "engine/steering.py", "__call__"),
    ("streamer (detokenize, wake the consumer)", "engine/engine_base.py", "put"),
    ("streamer (detokenize, wake the consumer)", "engine/llama_cpp_backend.py", "put"),  # queues the ids only
)
LOOP = ("engine/llama_cpp_backend.py", "_sample_row")


def grouped_ms(stats: pstats.Stats, new_tokens: int) -> dict[str, float]:
    """ms per new token by group, from a profile of the generation thread."""
    found: dict[str, float] = {}
    total = 0.0
    for (file, _line, name), (_cc, _nc, _tt, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        for group, suffix, function in GROUPS:
            if file.endswith(suffix) and name == function:
                found[group] = found.get(group, 0.0) + cumulative
        if file.endswith(LOOP[0]) and name == LOOP[1]:
            total += cumulative
    processors = found.get("Python logits processors", 0.0)
    if "sampling (llama.cpp chain)" in found and any(f.endswith("llama_cpp/llama.py") and n == "sample"
                                                    for f, _l, n in stats.stats):  # type: ignore[attr-defined]
        found["sampling (llama.cpp chain)"] -= processors  # the old loop ran them inside llama.cpp's sample
    found["rest of the loop (Python)"] = total - sum(found.values())
    found["total"] = total
    return {group: seconds * 1000 / new_tokens for group, seconds in found.items()}


def profiled_passage(engine, request) -> tuple[dict[str, float], float]:
    profile = cProfile.Profile()
    original = engine._sample_row

    def wrapped(*args, **kwargs):
        profile.enable()
        try:
            return original(*args, **kwargs)
        finally:
            profile.disable()

    engine._sample_row = wrapped
    try:
        result = consume(engine, request)
    finally:
        del engine._sample_row
    return grouped_ms(pstats.Stats(profile), result.stats.new_tokens), decode_ms(result)


def thread_timed(spent: dict[str, float], name: str, function):
    """``function``, adding the CPU time its calls take on the calling thread to ``spent[name]`` (seconds)."""
    def wrapper(*args, **kwargs):
        started = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] += time.thread_time() - started
    return wrapper


def thread_cpu_ms(engine, request) -> tuple[float, float]:
    """CPU time of the generation thread per new token (``time.thread_time``, which load inflates far less than
    wall time): inside llama.cpp's decode of the new tokens, and the rest of the loop (sampling, hooks, streaming,
    stops). The prompt's decode is left out of both."""
    llama = engine.loaded.model.llama
    spent = {"eval": 0.0, "prompt": 0.0, "loop": 0.0}

    def timed(name, function):
        return thread_timed(spent, name, function)

    stepper = "_decode_next" if hasattr(engine, "_decode_next") else None  # session 9: not Llama.eval
    if stepper:
        setattr(engine, stepper, timed("eval", getattr(engine, stepper)))
    else:
        llama.eval = timed("eval", llama.eval)
    engine._read_prompt = timed("prompt", engine._read_prompt)
    engine._sample_row = timed("loop", engine._sample_row)
    try:
        new_tokens = consume(engine, request).stats.new_tokens
    finally:
        del engine._read_prompt, engine._sample_row
        if stepper:
            delattr(engine, stepper)
        else:
            del llama.eval
    decode = spent["eval"] - (0.0 if stepper else spent["prompt"])
    return decode * 1000 / max(1, new_tokens - 1), (spent["loop"] - spent["prompt"] - decode) * 1000 / new_tokens


def consume(engine, request):
    """Stream the passage to a consumer thread (as the editor does) and return the result."""
    engine.forget_context()
    stream = engine.stream(request)
    consumer = threading.Thread(target=lambda: [None for _piece in stream])
    consumer.start()
    consumer.join()
    return stream.result()


def decode_ms(result) -> float:
    stats = result.stats
    return (stats.elapsed_s - (stats.time_to_first_token_s or 0)) * 1000 / max(1, stats.new_tokens - 1)


def bare_loop_ms(llama, prompt: list[int], new_tokens: int, sampler=None) -> float:
    """llama_decode one token at a time (the token fed back is the sampled one, or a fixed one without sampler)."""
    import llama_cpp

    llama.reset()
    llama.eval(prompt)
    token = prompt[-1]
    started = time.perf_counter()
    for _ in range(new_tokens):
        if sampler is not None:
            token = sampler.sample(llama.ctx)
        llama.eval([token])
    elapsed = time.perf_counter() - started
    llama_cpp.llama_perf_context_reset(llama.ctx)
    return elapsed * 1000 / new_tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the GGUF loader's decoding threads
    import storyterm.engine.llama_cpp_backend as backend
    from storyterm.engine.generation import GenerationRequest
    from storyterm.engine.loading import ModelSpec, load_model, open_engine
    from storyterm.engine.settings import DEFAULT_SETTINGS

    loaded = load_model(ModelSpec(str(args.model)))
    engine = open_engine(loaded)
    settings = DEFAULT_SETTINGS.with_changes(max_new_tokens=args.new_tokens)
    request = GenerationRequest(loaded.genres[0] if loaded.genres else "drama", STORY, settings=settings)
    consume(engine, request)  # warm-up
    groups: dict[str, list[float]] = {}
    engine_ms, bare_ms = [], []
    chains: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    prompt = engine.prepare(request).input_ids
    try:
        from storyterm.engine.llama_cpp_sampling import NativeSampler as native
    except ImportError:  # an engine from before issue 17's native sampling
        native = None
    for run in range(args.runs):
        seeded = GenerationRequest(request.genre, STORY, settings=settings.with_changes(seed=run + 1))
        found, _ = profiled_passage(engine, seeded)
        for group, ms in found.items():
            groups.setdefault(group, []).append(ms)
        engine_ms.append(decode_ms(consume(engine, seeded)))
        decode_cpu, rest_cpu = thread_cpu_ms(engine, seeded)
        cpu.setdefault("llama.cpp decode (llama.eval)", []).append(decode_cpu)
        cpu.setdefault("the rest of the loop (sampling, hooks, streaming, stops)", []).append(rest_cpu)
        bare_ms.append(bare_loop_ms(loaded.model.llama, prompt, args.new_tokens))
        if native is not None:
            import llama_cpp

            variants = {  # the engine's chain, then without the penalty, then without the bias too
                "bare loop + llama.cpp sampler chain (engine's settings)": (engine.suppressed_token_ids, prompt),
                "bare loop + chain without the repetition penalty": (engine.suppressed_token_ids, None),
                "bare loop + chain without penalty and -inf bias": ((), None)}
            for name, (banned, history) in variants.items():
                sampler = native(llama_cpp, loaded.model.llama.n_vocab(), seeded.settings, run + 1,
                                 banned_ids=banned, penalty_history=history)
                try:
                    chains.setdefault(name, []).append(bare_loop_ms(loaded.model.llama, prompt, args.new_tokens,
                                                                    sampler))
                finally:
                    sampler.close()
    print(f"{args.model.name}, {args.threads} thread(s), {args.new_tokens} new tokens, median of {args.runs}; "
          f"engine module {backend.__file__}; load average {os.getloadavg()[0]:.1f}\n")
    print("| where a decode step's time goes (cProfile) | ms/token | share |\n|---|---:|---:|")
    total = statistics.median(groups["total"])
    order = [*dict.fromkeys(group for group, _s, _f in GROUPS), "rest of the loop (Python)"]
    for group, values in sorted(groups.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99):
        if group != "total":
            print(f"| {group} | {statistics.median(values):.2f} | {statistics.median(values) / total:.0%} |")
    print(f"| **total** | **{total:.2f}** | |\n")
    print("| without the profiler | decode ms/token | tok/s |\n|---|---:|---:|")
    rows = [("storyterm GGUF engine (streaming, default sampling)", engine_ms),
            ("bare llama_decode loop (no sampling, as llama-bench tg)", bare_ms)]
    rows += list(chains.items())
    for name, values in rows:
        print(f"| {name} | {statistics.median(values):.2f} | {1000 / statistics.median(values):.1f} |")
    print("\n| generation thread's CPU time (no profiler) | ms/token |\n|---|---:|")
    for name, values in cpu.items():
        print(f"| {name} | {statistics.median(values):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
