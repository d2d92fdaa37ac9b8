"""Where the GGUF engine's gap to llama-bench lies (issue 17): llama-bench, a ladder of decode loops on the engine's
own llama.cpp context that add the engine's per-token pieces one at a time, and the engine's streamed passage,
interleaved run by run, at 1 thread (``--threads``). llama-bench runs twice: mapping the file (its default) and
reading it into memory (``-lm none``, as the engine does when the weights fit: ``STORYTERM_GGUF_MMAP=1`` maps).

    python benchmarks/gguf_gap.py MODEL.gguf [--runs 5] [--new-tokens 64] [--threads 1] [--rungs 0,4,8]
        [--no-engine] [--switch-interval S]

The rungs (each adds to the one above; the prompt is the engine's own, read before the clock starts):

0. bare ``llama_decode``: one token a step through a ctypes batch, nothing between steps (what llama-bench's tg does);
1. the engine's decode call instead (``LlamaCppEngine._decode_next``: the batch reused, llama-cpp-python's
   ``input_ids`` and ``n_tokens`` kept);
2. the last position's logits row as a numpy view (``llama_get_logits_ith``);
3. the repetition penalty with numpy on that row (``RepetitionPenalty``, the prompt as its history);
4. llama.cpp's sampler chain with the engine's settings (the -inf bias on suppressed ids, top-k, temperature, top-p,
   the seeded draw), the drawn token fed back (``NativeSampler``, which also runs rung 3);
5. the loop's bookkeeping: the hook plan's check, the token lists (``TokenIds``);
6. the streamer's ``put`` (``ConsumerDecodingStreamer``, ids queued, nobody reading);
7. the stop checks (end token, limit, cancel, the criteria);
8. a reader thread decoding the stream as the editor does;
9. the loop run in a thread of its own (the engine's generation thread is not the main thread);

then rung 1 with llama-cpp-python's ``Llama.eval([token])`` as the decode call (the engine's until session 9: a KV
trim and a Python loop filling the batch each call), and the engine's whole streamed passage (decode tok/s: tokens
after the first over the time after the first). ``--also-mapped`` loads the file a second time mapped rather than
read into memory and adds its bare loop and passage. ``--bench-params`` (session 10) adds llama-bench's own tg loop
through llama-cpp-python (``gguf_bench_params.py``): on a context made as llama-bench makes it, then changing one
thing at a time toward the engine's context, in this process (torch and the engine loaded) and in a plain Python
process that imports neither (``bench loop, plain process``); ``--lib-path DIR`` times that plain process once more
with llama.cpp's libraries from DIR (``LLAMA_CPP_LIB_PATH``: e.g. the build llama-bench was linked with).
``--engine-vs-thread`` times only the engine's passage against llama-bench's loop on a fresh thread, with nothing
decoded on the main thread (one libgomp pool at a time: the fair comparison at 2 threads; run it under
``GOMP_SPINCOUNT`` / ``OMP_WAIT_POLICY`` to see libgomp's waits).
At more than 1 thread, rung 9 and the engine's passage are slowed by this script itself: its main thread decodes
with llama.cpp's OpenMP threads first, and libgomp then sleeps the threads of every other thread's pool (session 10).
Each row gives wall ms a token and the decoding thread's CPU ms a token (``time.thread_time``; on a shared machine
it moves far less with load than wall time), medians of the runs with min–max.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_side_by_side import (  # noqa: E402 - after the path
    find_llama_bench,
    gguf_engine,
    llama_bench_tokens_per_s,
)

RUNGS = (
    "0 bare llama_decode (ctypes batch)",
    "1 + the engine's decode call (batch reused, input_ids kept)",
    "2 + logits row as numpy",
    "3 + numpy repetition penalty",
    "4 + llama.cpp sampler chain, drawn token fed back",
    "5 + hook check, token lists",
    "6 + streamer put (no reader)",
    "7 + stop checks",
    "8 + reader thread decoding the stream",
    "9 + the loop in its own thread, as the engine's",
)
LLAMA_EVAL_ROW = "(rung 1 with Llama.eval as the decode call: session 8's loop)"
BARE, EVAL, ROW, PENALTY, CHAIN, BOOKKEEPING, STREAM, STOPS, READER, THREAD = range(len(RUNGS))


def ladder_step_ms(engine, request, rung: int, new_tokens: int, seed: int, *, llama_eval: bool = False
                   ) -> tuple[float, float, float]:
    """(wall ms, thread CPU ms, of which in the decode call) per token of ``new_tokens`` decode steps with the
    pieces up to ``rung``; ``llama_eval``: decode with ``Llama.eval`` rather than the engine's call."""
    import llama_cpp
    import numpy as np

    from storyterm.engine.llama_cpp_backend import ConsumerDecodingStreamer, TokenIds
    from storyterm.engine.llama_cpp_sampling import NativeSampler, RepetitionPenalty

    llama, settings = engine.loaded.model.llama, request.settings.with_changes(seed=seed)
    request = request.__class__(request.genre, request.story, settings=settings)
    prepared = engine.prepare_passage(request)
    prompt = list(prepared.input_ids)
    run = engine._new_run(request, prepared)
    plan = engine._plan(run, prepared)
    history = prompt[prepared.header_tokens + prepared.lorebook_tokens:]
    n_vocab, ctx = llama.n_vocab(), llama.ctx
    sampler = NativeSampler(llama_cpp, n_vocab, settings, seed, banned_ids=plan.banned_ids,
                            penalty_history=history) if rung >= CHAIN else None
    penalty = RepetitionPenalty(float(settings.repetition_penalty), history) if rung == PENALTY else None
    streamer = ConsumerDecodingStreamer(engine.loaded.tokenizer, run.anchor) if rung >= STREAM else None
    reader = threading.Thread(target=lambda: [None for _piece in streamer]) if rung >= READER else None
    criteria = engine._stop_criteria(run, len(prompt))
    batch = llama_cpp.llama_batch_init(1, 0, 1)
    llama.reset()
    engine._read_prompt(prompt)
    ids = TokenIds(prompt, new_tokens)
    new: list[int] = []
    if streamer is not None:
        streamer.put(np.array([prompt]))
    if reader is not None:
        reader.start()
    token, position = prompt[-1], len(prompt)
    in_decode = 0.0
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        for _step in range(new_tokens):
            if rung >= BOOKKEEPING:
                length = len(ids.tokens)
                if plan.hooks.active(len(new), ids.tokens):
                    engine._run_hooks(plan.hooks.active(len(new), ids.tokens), ids.view(length), n_vocab, False,
                                      plan.hooks.full_python)
            if sampler is not None:
                token = sampler.sample(ctx)
            elif rung >= ROW:
                row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
                if penalty is not None:
                    penalty.apply(row)
                    penalty.extend((token,))
            if rung >= BOOKKEEPING:
                new.append(token)
                ids.tokens.append(token)
            if streamer is not None:
                streamer.put(np.array([token]))
            if rung >= STOPS and (token in engine._eos_ids or len(new) >= new_tokens + 1 or run.cancelled.is_set()
                                  or any(bool(c(ids.view(length + 1), None)[0]) for c in criteria)):
                pass  # the checks' cost, without ending early: every rung decodes new_tokens steps
            decode_started = time.thread_time()
            if rung == BARE:
                batch.n_tokens = 1
                batch.token[0], batch.pos[0], batch.n_seq_id[0], batch.seq_id[0][0] = token, position, 1, 0
                batch.logits[0] = True
                if llama_cpp.llama_decode(ctx, batch) != 0:
                    raise RuntimeError("llama_decode failed")
                position += 1
            elif llama_eval:
                llama.eval([token])
            else:
                engine._decode_next(token)
            in_decode += time.thread_time() - decode_started
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    finally:
        llama_cpp.llama_batch_free(batch)
        if sampler is not None:
            sampler.close()
        if streamer is not None:
            streamer.end()
        if reader is not None:
            reader.join()
    return wall * 1000 / new_tokens, cpu * 1000 / new_tokens, in_decode * 1000 / new_tokens


def in_own_thread(function, *args):
    """``function(*args)`` run in a new thread (its thread CPU time is that thread's)."""
    result = []
    worker = threading.Thread(target=lambda: result.append(function(*args)))
    worker.start()
    worker.join()
    return result[0]


def engine_passage_ms(engine, request, seed: int) -> tuple[float, float, float]:
    """(wall ms, generation thread CPU ms, of which in llama.cpp's decode) per decoded token of the engine's streamed
    passage: the time after the first token, the CPU of the loop less the prompt's decode."""
    from speed_timing import timed_stream
    from profile_gguf_decode import thread_timed

    spent = {"prompt": 0.0, "loop": 0.0, "decode": 0.0}

    def timed(name, function):
        return thread_timed(spent, name, function)

    engine._decode_next = timed("decode", engine._decode_next)
    engine._read_prompt = timed("prompt", engine._read_prompt)
    engine._sample_row = timed("loop", engine._sample_row)
    try:
        seeded = request.__class__(request.genre, request.story, settings=request.settings.with_changes(seed=seed))
        timing = timed_stream(engine, seeded)
    finally:
        del engine._decode_next, engine._read_prompt, engine._sample_row
    per_token = 1000 / timing.new_tokens
    return (1000 / timing.decode_tokens_per_s, (spent["loop"] - spent["prompt"]) * per_token,
            spent["decode"] * per_token)


PLAIN_PROCESS = "bench loop, llama-bench's context, plain process (no torch, no storyterm)"


def plain_process_ms(gguf: Path, threads: int, new_tokens: int, seed: int, lib_path: str | None = None) -> float:
    """llama-bench's loop and context through llama-cpp-python in a fresh Python process without torch;
    ``lib_path``: llama.cpp's libraries from there rather than the wheel's."""
    script = Path(__file__).with_name("gguf_bench_params.py")
    env = {**os.environ, **({"LLAMA_CPP_LIB_PATH": lib_path} if lib_path else {})}
    done = subprocess.run([sys.executable, str(script), str(gguf), "--threads", str(threads), "--new-tokens",
                           str(new_tokens), "--seed", str(seed), "--first-only"], capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        raise RuntimeError(f"gguf_bench_params.py failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return next(iter(json.loads(done.stdout).values()))


def engine_vs_thread(gguf: Path, threads: int, new_tokens: int, runs: int) -> None:
    from bench_side_by_side import gguf_engine_tokens_per_s
    from gguf_bench_params import bare_loop_ms, in_own_thread as fresh_thread, load_model, new_context, quiet

    engine, request = gguf_engine(gguf, new_tokens)
    loaded = load_model(str(gguf))
    quiet()
    context = new_context(loaded, threads, new_tokens)
    times: dict[str, list[float]] = {"storyterm GGUF engine, streamed passage": [],
                                     "llama-bench's loop and context, a fresh thread": []}
    loads = [os.getloadavg()[0]]
    for run in range(runs):
        times["storyterm GGUF engine, streamed passage"].append(
            1000 / gguf_engine_tokens_per_s(engine, request, threads, run))
        times["llama-bench's loop and context, a fresh thread"].append(
            fresh_thread(bare_loop_ms, loaded, context, threads, new_tokens, 0, run))
        loads.append(os.getloadavg()[0])
    waits = " ".join(f"{k}={os.environ[k]}" for k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY") if k in os.environ)
    print(f"{gguf.name}, {threads} thread(s), {runs} interleaved runs, {time.strftime('%H:%M', time.gmtime())} UTC, "
          f"load {min(loads):.1f}–{max(loads):.1f}{', ' + waits if waits else ''}\n")
    print("| decode loop | wall ms/token |\n|---|---:|")
    for name, values in times.items():
        print(f"| {name} | {summary(values)} |")


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gguf", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rungs", help="only these rungs, comma-separated numbers (default: all)")
    parser.add_argument("--no-engine", action="store_true", help="leave out the engine's streamed passage")
    parser.add_argument("--also-mapped", action="store_true",
                        help="load the file a second time, mapped (STORYTERM_GGUF_MMAP=1): its bare loop and passage")
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval for the engine's threads")
    parser.add_argument("--bench-params", action="store_true",
                        help="add llama-bench's own loop and context through llama-cpp-python (gguf_bench_params.py)")
    parser.add_argument("--lib-path",
                        help="with --bench-params: the plain process again, its llama.cpp libraries from here")
    parser.add_argument("--engine-vs-thread", action="store_true",
                        help="only the engine's passage against llama-bench's loop on a fresh thread (see above)")
    args = parser.parse_args()
    if args.engine_vs_thread:
        engine_vs_thread(args.gguf, args.threads, args.new_tokens, args.runs)
        return
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    import llama_cpp

    binary = find_llama_bench(None)
    engine, request = gguf_engine(args.gguf, args.new_tokens)
    in_memory = engine.loaded.model.in_memory
    mapped = None
    if args.also_mapped:
        os.environ["STORYTERM_GGUF_MMAP"] = "1"
        mapped = gguf_engine(args.gguf, args.new_tokens)
        del os.environ["STORYTERM_GGUF_MMAP"]
        llama_cpp.llama_set_n_threads(mapped[0].loaded.model.llama.ctx, args.threads, max(2, args.threads))
    llama_cpp.llama_set_n_threads(engine.loaded.model.llama.ctx, args.threads, max(2, args.threads))
    wall: dict[str, list[float]] = {"llama-bench tg (maps the file)": [], "llama-bench tg -lm none (reads it)": []}
    ladder = None
    if args.bench_params:
        from gguf_bench_params import VARIANTS, BenchParamsLadder

        ladder = BenchParamsLadder(str(args.gguf), args.threads, args.new_tokens)
        wall[PLAIN_PROCESS] = []
        if args.lib_path:
            wall[f"{PLAIN_PROCESS}, libraries from {args.lib_path}"] = []
        for name in VARIANTS:
            wall[f"bench loop, this process: {name}"] = []
    cpu: dict[str, list[float]] = {}
    in_decode: dict[str, list[float]] = {}
    started = time.strftime("%H:%M", time.gmtime())
    loads = [os.getloadavg()[0]]
    for run in range(args.runs):
        for (name, values), mode in zip(list(wall.items())[:2], ("", "none")):
            values.append(1000 / llama_bench_tokens_per_s(binary, args.gguf, args.threads, args.new_tokens, mode))
        if ladder is not None:
            wall[PLAIN_PROCESS].append(plain_process_ms(args.gguf, args.threads, args.new_tokens, run))
            if args.lib_path:
                wall[f"{PLAIN_PROCESS}, libraries from {args.lib_path}"].append(
                    plain_process_ms(args.gguf, args.threads, args.new_tokens, run, args.lib_path))
            for name in ladder.variants:
                wall[f"bench loop, this process: {name}"].append(ladder.measure(name, run))
        for rung, name in enumerate(RUNGS):
            if args.rungs and str(rung) not in args.rungs.split(","):
                continue
            measured = in_own_thread(ladder_step_ms, engine, request, rung, args.new_tokens, run + 1) \
                if rung == THREAD else ladder_step_ms(engine, request, rung, args.new_tokens, run + 1)
            for table, value in zip((wall, cpu, in_decode), measured):
                table.setdefault(name, []).append(value)
        if not args.rungs or "1" in args.rungs.split(","):
            measured = ladder_step_ms(engine, request, EVAL, args.new_tokens, run + 1, llama_eval=True)
            for table, value in zip((wall, cpu, in_decode), measured):
                table.setdefault(LLAMA_EVAL_ROW, []).append(value)
        if mapped is not None:
            for name, measure in (("0 bare llama_decode, weights mapped", lambda: ladder_step_ms(
                    *mapped, BARE, args.new_tokens, run + 1)), ("storyterm GGUF engine, weights mapped",
                                                                lambda: engine_passage_ms(*mapped, run + 1))):
                for table, value in zip((wall, cpu, in_decode), measure()):
                    table.setdefault(name, []).append(value)
        if args.no_engine:
            loads.append(os.getloadavg()[0])
            continue
        measured = engine_passage_ms(engine, request, run + 1)
        for table, value in zip((wall, cpu, in_decode), measured):
            table.setdefault("storyterm GGUF engine, streamed passage", []).append(value)
        loads.append(os.getloadavg()[0])
    print(f"{args.gguf.name}, {args.threads} thread(s), {args.new_tokens} new tokens, {args.runs} interleaved runs, "
          f"{started}–{time.strftime('%H:%M', time.gmtime())} UTC, load {min(loads):.1f}–{max(loads):.1f}; the "
          f"engine's weights {'read into memory' if in_memory else 'mapped from the file'}\n")
    if args.threads > 1:
        print("(more than 1 thread: the rows decoded off the main thread — rung 9, the engine — pay for libgomp's "
              "second pool; see the module docstring)\n")
    print("| rung | wall ms/token | Δ wall | thread CPU ms/token | of it in decode | CPU outside decode | tok/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    previous = None
    for name, values in wall.items():
        median = statistics.median(values)
        delta = "" if previous is None else f"{median - previous:+.2f}"
        cpu_cells = "— | — | —"
        if name in cpu:
            outside = [total - inside for total, inside in zip(cpu[name], in_decode[name])]
            cpu_cells = f"{summary(cpu[name])} | {summary(in_decode[name])} | {summary(outside)}"
        print(f"| {name} | {summary(values)} | {delta} | {cpu_cells} | {1000 / median:.1f} |")
        previous = median


if __name__ == "__main__":
    main()
