"""A bare decode loop on a llama.cpp context made the way ``llama-bench`` makes its own (issue 17, session 10).

llama-bench's tg test (``tools/llama-bench/llama-bench.cpp``): the model with llama.cpp's default model parameters
(``load_mode`` auto: the file mapped on a CPU), a context of ``n_prompt + n_gen`` cells (llama.cpp pads it to 256),
``n_batch`` 2048, ``n_ubatch`` 512, flash attention auto, f16 K/V; one warm-up token, the cache cleared, then
``n_gen`` single-token decodes from position 0, each followed by ``llama_synchronize``, a random token each step.
``bare_loop_ms`` does exactly that through llama-cpp-python's low-level API; its keyword arguments change one thing
at a time toward what storyterm's engine does (the model's whole context, ``n_batch`` 512, flash attention forced
on, a prompt read first, a decode thread of its own). Run as a script it imports neither torch nor storyterm, so
``gguf_gap.py --bench-params`` can time the same loop in a plain process beside the engine's:

    python benchmarks/gguf_bench_params.py MODEL.gguf [--threads 1] [--new-tokens 64] [--runs 3]  # JSON ms/token

Two more experiments, each printing a table:

- ``--placement N``: the same weights several times in one process, mapped twice (the page cache's pages, the ones
  llama-bench maps too) and read into memory three times (three allocations), each with a context of its own,
  timed interleaved ``N`` times: how much where the weights sit in memory moves the speed; ``--contexts N``: five
  contexts on one mapped copy, timed in a shuffled order (does the context's own memory move it too?);
- ``--omp N``: (with ``--threads 2``) the loop on the main thread, then on a new thread each time, ``N`` times
  interleaved; with ``--omp-new-thread-only`` the main thread never decodes. llama.cpp's wheel runs its threads with
  OpenMP (libgomp, shared with torch's when torch is imported first): one pool per thread that starts a parallel
  region, and libgomp stops spinning and sleeps at once when its threads outnumber the CPUs.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import random
import statistics
import threading
import time
from dataclasses import dataclass

# The variants gguf_gap.py --bench-params times: name -> changes from llama-bench's context.
VARIANTS = {
    "llama-bench's context (load auto, n_ctx = new tokens, n_batch 2048, flash auto, from position 0)": {},
    "+ the model's whole context as n_ctx (the engine's)": {"whole_context": True},
    "+ n_batch 512 (llama-cpp-python's)": {"n_batch": 512},
    "+ flash attention forced on (the engine's)": {"flash": "on"},
    "+ weights mapped explicitly (load_mode mmap, the engine's)": {"load_mode": "mmap"},
    "+ weights read into memory (load_mode none)": {"load_mode": "none"},
    "+ a 32-token prompt read first": {"prompt": 32},
    "+ decoded in a thread of its own": {"own_thread": True},
}


@dataclass
class Loaded:
    model: object
    n_vocab: int
    n_ctx_train: int


_quiet = None


def quiet() -> None:
    """llama.cpp's log to nowhere (its loading log would bury the table)."""
    global _quiet
    import llama_cpp

    if _quiet is None:
        _quiet = llama_cpp.llama_log_callback(lambda _level, _text, _data: None)
        llama_cpp.llama_backend_init()
    llama_cpp.llama_log_set(_quiet, ctypes.c_void_p(0))


def load_model(path: str, load_mode: str = "auto") -> Loaded:
    import llama_cpp

    quiet()
    params = llama_cpp.llama_model_default_params()  # llama-bench's, but for load_mode when asked
    params.load_mode = {"auto": llama_cpp.LLAMA_LOAD_MODE_AUTO, "mmap": llama_cpp.LLAMA_LOAD_MODE_MMAP,
                        "none": llama_cpp.LLAMA_LOAD_MODE_NONE}[load_mode]
    model = llama_cpp.llama_model_load_from_file(path.encode(), params)
    if not model:
        raise RuntimeError(f"llama.cpp cannot load {path}")
    vocab = llama_cpp.llama_model_get_vocab(model)
    return Loaded(model, llama_cpp.llama_vocab_n_tokens(vocab), llama_cpp.llama_model_n_ctx_train(model))


def new_context(loaded: Loaded, threads: int, new_tokens: int, *, whole_context: bool = False, n_batch: int = 2048,
                flash: str = "auto", prompt: int = 0):
    """A context as llama-bench's ``to_llama_cparams`` makes it, with the changes asked for."""
    import llama_cpp

    params = llama_cpp.llama_context_default_params()
    params.n_ctx = loaded.n_ctx_train if whole_context else prompt + new_tokens
    params.n_batch, params.n_ubatch = n_batch, min(512, n_batch)
    params.flash_attn_type = {"auto": llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO,
                              "on": llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED}[flash]
    params.n_threads = params.n_threads_batch = threads
    context = llama_cpp.llama_init_from_model(loaded.model, params)
    if not context:
        raise RuntimeError("llama.cpp cannot make the context")
    return context


def bare_loop_ms(loaded: Loaded, context, threads: int, new_tokens: int, prompt: int = 0, seed: int = 0) -> float:
    """Wall ms a token of llama-bench's tg loop on ``context``: warm-up token, cache cleared, ``prompt`` random
    tokens read in one batch (llama-bench: none), then ``new_tokens`` single-token decodes, synchronized."""
    import llama_cpp

    draw = random.Random(seed)
    llama_cpp.llama_set_n_threads(context, threads, threads)
    memory = llama_cpp.llama_get_memory(context)
    batch = llama_cpp.llama_batch_init(max(prompt, 1), 0, 1)

    def fill(tokens: list[int], start: int) -> None:
        batch.n_tokens = len(tokens)
        for index, token in enumerate(tokens):
            batch.token[index], batch.pos[index] = token, start + index
            batch.n_seq_id[index], batch.seq_id[index][0] = 1, 0
            batch.logits[index] = index == len(tokens) - 1
        if llama_cpp.llama_decode(context, batch) != 0:
            raise RuntimeError("llama_decode failed")
        llama_cpp.llama_synchronize(context)

    try:
        llama_cpp.llama_memory_clear(memory, False)
        fill([draw.randrange(loaded.n_vocab)], 0)  # llama-bench's warm-up run
        llama_cpp.llama_memory_clear(memory, False)
        if prompt:
            fill([draw.randrange(loaded.n_vocab) for _ in range(prompt)], 0)
        started = time.perf_counter()
        for step in range(new_tokens):
            fill([draw.randrange(loaded.n_vocab)], prompt + step)
        return (time.perf_counter() - started) * 1000 / new_tokens
    finally:
        llama_cpp.llama_batch_free(batch)


def in_own_thread(function, *args, **kwargs):
    result = []
    worker = threading.Thread(target=lambda: result.append(function(*args, **kwargs)))
    worker.start()
    worker.join()
    return result[0]


class BenchParamsLadder:
    """The VARIANTS, each on a context of its own made once (models loaded once per load mode)."""

    def __init__(self, path: str, threads: int, new_tokens: int, variants: dict[str, dict] | None = None):
        self.threads, self.new_tokens = threads, new_tokens
        self.variants = VARIANTS if variants is None else variants
        self.models: dict[str, Loaded] = {}
        self.contexts = {}
        for name, changes in self.variants.items():
            mode = changes.get("load_mode", "auto")
            if mode not in self.models:
                self.models[mode] = load_model(path, mode)
            options = {k: v for k, v in changes.items() if k in ("whole_context", "n_batch", "flash", "prompt")}
            self.contexts[name] = new_context(self.models[mode], threads, new_tokens, **options)

    def measure(self, name: str, seed: int) -> float:
        changes = self.variants[name]
        loaded = self.models[changes.get("load_mode", "auto")]
        arguments = (loaded, self.contexts[name], self.threads, self.new_tokens, changes.get("prompt", 0), seed)
        return in_own_thread(bare_loop_ms, *arguments) if changes.get("own_thread") else bare_loop_ms(*arguments)

    def close(self) -> None:
        import llama_cpp

        for context in self.contexts.values():
            llama_cpp.llama_free(context)
        for loaded in self.models.values():
            llama_cpp.llama_model_free(loaded.model)


def placement_table(path: str, threads: int, new_tokens: int, runs: int) -> str:
    import os

    copies = {}
    for name, mode in (("mapped A", "auto"), ("read 1", "none"), ("mapped B", "auto"), ("read 2", "none"),
                       ("read 3", "none")):
        loaded = load_model(path, mode)
        copies[name] = (loaded, new_context(loaded, threads, new_tokens))
    times: dict[str, list[float]] = {name: [] for name in copies}
    loads, started = [os.getloadavg()[0]], time.strftime("%H:%M", time.gmtime())
    for run in range(runs):
        for name, (loaded, context) in copies.items():
            times[name].append(bare_loop_ms(loaded, context, threads, new_tokens, 0, run))
        loads.append(os.getloadavg()[0])
    title = (f"{os.path.basename(path)}, {threads} thread(s), {new_tokens} tokens, {runs} interleaved runs, {started}–"
             f"{time.strftime('%H:%M', time.gmtime())} UTC, load {min(loads):.1f}–{max(loads):.1f}")
    return _times_table(title, "copy of the weights (loaded in this order)", times)


def contexts_table(path: str, threads: int, new_tokens: int, runs: int, count: int = 5) -> str:
    import os

    loaded = load_model(path)
    contexts = {f"context {index + 1}": new_context(loaded, threads, new_tokens) for index in range(count)}
    times: dict[str, list[float]] = {name: [] for name in contexts}
    order, shuffle, loads = list(contexts), random.Random(0), [os.getloadavg()[0]]
    for run in range(runs):
        shuffle.shuffle(order)
        for name in order:
            times[name].append(bare_loop_ms(loaded, contexts[name], threads, new_tokens, 0, run))
        loads.append(os.getloadavg()[0])
    title = (f"{os.path.basename(path)}, {threads} thread(s), {count} contexts on one mapped copy, {runs} runs in a "
             f"shuffled order, {time.strftime('%H:%M', time.gmtime())} UTC, load {min(loads):.1f}–{max(loads):.1f}")
    return _times_table(title, "context (made in this order)", times)


def _times_table(title: str, row_name: str, times: dict[str, list[float]]) -> str:
    """A markdown table of ms a token per row: median (min–max) and every run."""
    return "\n".join([
        title, "", f"| {row_name} | ms/token, median (min–max) | runs |", "|---|---:|---|",
        *(f"| {name} | {statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f}) | {', '.join(f'{x:.2f}' for x in v)} |"
          for name, v in times.items())])


def omp_table(path: str, threads: int, new_tokens: int, runs: int, new_thread_only: bool) -> str:
    import os

    loaded = load_model(path)
    context = new_context(loaded, threads, new_tokens)
    places = ("a new thread each time",) if new_thread_only else ("the main thread", "a new thread each time")
    times: dict[str, list[float]] = {place: [] for place in places}
    loads = [os.getloadavg()[0]]
    for run in range(runs):
        for place in places:
            arguments = (loaded, context, threads, new_tokens, 0, run)
            times[place].append(bare_loop_ms(*arguments) if place == "the main thread"
                                else in_own_thread(bare_loop_ms, *arguments))
        loads.append(os.getloadavg()[0])
    return "\n".join([
        f"{os.path.basename(path)}, {threads} thread(s), {runs} interleaved runs, "
        f"{time.strftime('%H:%M', time.gmtime())} UTC, load {min(loads):.1f}–{max(loads):.1f}", "",
        "| decoded on | ms/token, median (min–max) | runs |", "|---|---:|---|",
        *(f"| {place} | {statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f}) | {', '.join(f'{x:.2f}' for x in v)} |"
          for place, v in times.items())])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gguf")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=1, help="median of this many loops")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first-only", action="store_true", help="only llama-bench's own context")
    parser.add_argument("--placement", type=int, metavar="RUNS", help="the weights-placement table instead")
    parser.add_argument("--contexts", type=int, metavar="RUNS", help="the five-contexts table instead")
    parser.add_argument("--omp", type=int, metavar="RUNS", help="the main-thread / new-thread table instead")
    parser.add_argument("--omp-new-thread-only", action="store_true", help="with --omp: the main thread never decodes")
    args = parser.parse_args()
    if args.placement:
        print(placement_table(args.gguf, args.threads, args.new_tokens, args.placement))
        return
    if args.contexts:
        print(contexts_table(args.gguf, args.threads, args.new_tokens, args.contexts))
        return
    if args.omp:
        print(omp_table(args.gguf, args.threads, args.new_tokens, args.omp, args.omp_new_thread_only))
        return
    first = next(iter(VARIANTS))
    ladder = BenchParamsLadder(args.gguf, args.threads, args.new_tokens,
                               {first: VARIANTS[first]} if args.first_only else None)
    print(json.dumps({name: statistics.median(ladder.measure(name, args.seed + run) for run in range(args.runs))
                      for name in ladder.variants}))
    ladder.close()


if __name__ == "__main__":
    main()
