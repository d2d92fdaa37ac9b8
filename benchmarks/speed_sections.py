"""bench_speed.py's measurements, one function per section of its report: 1 + 2 streaming vs bare ``generate`` vs
the seed's pipeline, 3 the fast paths (with the variants measured on CPU and GPU), 4 long drafts and co-writing
sessions. Runs of the variants compared in one table are interleaved so a change in machine load hits them alike."""

from __future__ import annotations

import copy
import gc
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_generation import PROMPT, in_worker_thread
from speed_figures import Figure, log, ratio_figure
from speed_text import draft_of, perplexity
from speed_timing import Variant, cuda_sync, load, make_engine, request_for, timed_stream, warm_up

LONG_DRAFT_TOKENS = 5000
SHORT_DRAFT_TOKENS = 100


# ---------------------------------------------------------------------------------------------------------------------
# 1 + 2: streaming vs bare generate vs the seed's pipeline


def streaming_section(checkpoint: Path, dtype: str, device: str, runs: int, new_tokens: int) -> dict[str, Figure]:
    import torch
    from transformers import pipeline

    loaded = load(checkpoint, Variant(dtype, dtype), device)
    engine = make_engine(loaded, new_tokens)
    request = request_for(PROMPT, new_tokens)
    prompt_ids = engine.prepare(request).input_ids
    config = engine.generation_config(request.settings)
    input_ids = torch.tensor([prompt_ids], device=loaded.device)
    prompt_text = loaded.tokenizer.decode(prompt_ids)
    text_generator = pipeline("text-generation", model=loaded.model, tokenizer=loaded.tokenizer)

    def bare() -> float:
        torch.manual_seed(1)
        started = time.perf_counter()
        with torch.inference_mode():
            output = loaded.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                           generation_config=config)
        cuda_sync(device)
        elapsed = time.perf_counter() - started
        assert output.shape[1] - input_ids.shape[1] == new_tokens
        return new_tokens / elapsed

    def seed_pipeline() -> float:
        torch.manual_seed(1)
        started = time.perf_counter()
        text_generator(prompt_text, generation_config=config, return_full_text=False)
        cuda_sync(device)
        return time.perf_counter() - started  # the seed showed nothing until the passage was done

    warm_config = copy.deepcopy(config)
    warm_config.max_new_tokens = warm_config.min_new_tokens = 4
    in_worker_thread(lambda: text_generator(prompt_text, generation_config=warm_config, return_full_text=False))
    warm_up(engine, request)
    figures = {name: Figure() for name in ("bare", "stream", "first_text", "pipeline_s")}
    for run in range(runs):
        figures["bare"].add(in_worker_thread(bare))
        timing = timed_stream(engine, request)
        figures["stream"].add(timing.tokens_per_s)
        figures["first_text"].add(timing.first_text_s)
        figures["pipeline_s"].add(in_worker_thread(seed_pipeline))
        log(f"  streaming {run + 1}/{runs}: bare {figures['bare'].values[-1]:.1f} tok/s, engine "
            f"{timing.tokens_per_s:.1f} tok/s, first text {timing.first_text_s:.3f} s, pipeline "
            f"{figures['pipeline_s'].values[-1]:.2f} s")
    figures["ratio"] = ratio_figure(figures["stream"], figures["bare"])
    figures["first_ratio"] = ratio_figure(figures["first_text"], figures["pipeline_s"])
    text_generator = engine = loaded = None  # free the model (not `del`: the closures above use the names)
    gc.collect()
    return figures


# ---------------------------------------------------------------------------------------------------------------------
# 3: fast paths


@dataclass
class PathResult:
    path: Variant
    speed: Figure = field(default_factory=Figure)
    perplexity: float | None = None
    error: str | None = None


def paths_section(checkpoint: Path, paths: Sequence[Variant], device: str, runs: int, new_tokens: int,
                  eval_file: Path | None) -> list[PathResult]:
    import torch

    results, engines = [], []
    request = request_for(PROMPT, new_tokens)
    for path in paths:
        result = PathResult(path)
        results.append(result)
        try:
            loaded = load(checkpoint, path, device)
            if path.threads is None:  # loading set the threads this dtype gets in storyterm: keep them for its runs
                path.threads = torch.get_num_threads()
            engine = make_engine(loaded, new_tokens, path.overrides)
            warm_up(engine, request)
            if eval_file is not None:
                result.perplexity = perplexity(loaded, eval_file)
            engines.append((result, engine))
        except Exception as error:  # noqa: BLE001 - a path that does not work here is a row saying so
            result.error = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            log(f"  {path.label}: failed: {result.error}")
    for run in range(runs):
        for result, engine in engines:
            result.speed.add(timed_stream(engine, request, result.path.threads).tokens_per_s)
        log(f"  paths {run + 1}/{runs}: " + ", ".join(f"{r.path.label} {r.speed.values[-1]:.1f}" for r, _ in engines))
    engines.clear()
    gc.collect()
    return results


# ---------------------------------------------------------------------------------------------------------------------
# 4: long drafts


def drafts_section(checkpoint: Path, dtype: str, device: str, runs: int, new_tokens: int, text: str,
                   overrides: dict[str, Any] | None = None) -> dict:
    loaded = load(checkpoint, Variant(dtype, dtype), device)
    engine = make_engine(loaded, new_tokens, overrides)
    short = request_for(draft_of(loaded.tokenizer, text, SHORT_DRAFT_TOKENS), new_tokens)
    long = request_for(draft_of(loaded.tokenizer, text, LONG_DRAFT_TOKENS), new_tokens)
    warm_up(engine, short)
    warm_up(engine, long)
    figures = {name: Figure() for name in ("short", "long", "short_decode", "long_decode", "short_first",
                                           "long_first", "prepare_ms", "encode_all_ms")}
    for run in range(runs):
        for name, request in (("short", short), ("long", long)):
            timing = timed_stream(engine, request)  # a passage on a draft just opened: the whole window is read
            figures[name].add(timing.tokens_per_s)
            figures[f"{name}_decode"].add(timing.decode_tokens_per_s)
            figures[f"{name}_first"].add(timing.first_text_s)
        started = time.perf_counter()
        engine.prepare(long)
        figures["prepare_ms"].add((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        loaded.tokenizer(long.story, add_special_tokens=False, split_special_tokens=True)
        figures["encode_all_ms"].add((time.perf_counter() - started) * 1000)
        log(f"  drafts {run + 1}/{runs} {overrides or ''}: short {figures['short'].values[-1]:.1f} tok/s, long "
            f"{figures['long'].values[-1]:.1f} tok/s")
    figures["ratio"] = ratio_figure(figures["long"], figures["short"])
    figures["decode_ratio"] = ratio_figure(figures["long_decode"], figures["short_decode"])
    prepared = engine.prepare(long)
    figures["prompt_tokens"] = len(prepared.input_ids)
    figures["short_prompt_tokens"] = len(engine.prepare(short).input_ids)
    del engine, loaded
    gc.collect()
    return figures


def sessions_section(checkpoint: Path, dtype: str, device: str, runs: int, new_tokens: int, text: str,
                     passages: int, smart_context: bool) -> dict:
    """Co-writing: ``passages`` passages in a row, each appended to the draft before the next one (as accepting a
    passage does in the TUI), from a short and from a long draft. Tokens/s over the whole session, prefill included."""
    loaded = load(checkpoint, Variant(dtype, dtype), device)
    engine = make_engine(loaded, new_tokens, smart_context=smart_context)
    drafts = {"short": draft_of(loaded.tokenizer, text, SHORT_DRAFT_TOKENS),
              "long": draft_of(loaded.tokenizer, text, LONG_DRAFT_TOKENS)}
    for story in drafts.values():
        warm_up(engine, request_for(story, new_tokens))
    figures = {name: Figure() for name in ("short", "long", "short_first", "long_first", "long_cached")}
    for run in range(runs):
        for name, story in drafts.items():
            engine.forget_context()
            new_tokens_total, elapsed, firsts, cached = 0, 0.0, [], []
            for _ in range(passages):
                timing = timed_stream(engine, request_for(story, new_tokens), fresh=False)
                stats = timing.result.stats
                elapsed += timing.elapsed_s
                new_tokens_total += timing.new_tokens
                firsts.append(timing.first_text_s)
                cached.append(stats.cached_prompt_tokens / max(1, stats.prompt_tokens))
                story += timing.result.text
            figures[name].add(new_tokens_total / elapsed)
            figures[f"{name}_first"].add(statistics.mean(firsts))
            if name == "long":
                figures["long_cached"].add(statistics.mean(cached[1:]) if len(cached) > 1 else 0.0)
        log(f"  sessions {run + 1}/{runs} (smart context {'on' if smart_context else 'off'}): short "
            f"{figures['short'].values[-1]:.1f} tok/s, long {figures['long'].values[-1]:.1f} tok/s")
    figures["ratio"] = ratio_figure(figures["long"], figures["short"])
    del engine, loaded
    gc.collect()
    return figures


# ---------------------------------------------------------------------------------------------------------------------
# The variants section 3 measures


def cpu_paths(cores: int) -> list[Variant]:
    """Each dtype with the threads storyterm gives it, plus int8 on all ``cores`` (torch's default thread count,
    read before any model was loaded: loading an int8 model changes it) and int8 variants."""
    from storyterm.engine.fast_paths import int8_thread_count

    int8_threads = int8_thread_count()
    variants = [
        Variant(f"fp32 ({cores} threads)", "fp32", threads=cores),
        Variant(f"bf16 ({cores} threads)", "bf16", threads=cores),
        Variant(f"int8 ({int8_threads} thread{'s' if int8_threads > 1 else ''})", "int8"),
    ]
    if cores != int8_threads:
        variants.append(Variant(f"int8 ({cores} threads)", "int8", threads=cores, on_builtin=False))
    if cores != 1:  # int8 runs on one thread here: fp32 on one thread says how much of its lead is the thread count
        variants.insert(1, Variant("fp32 (1 thread)", "fp32", threads=1))
    return variants + [
        Variant("int8, lm_head fp32", "int8", include_lm_head=False),
        Variant("int8 + static KV cache", "int8", overrides={"cache_implementation": "static"}, on_builtin=False),
    ]


def gpu_paths() -> list[Variant]:
    return [Variant("fp32", "fp32"), Variant("fp16", "fp16"), Variant("bf16", "bf16"),
            Variant("bf16 + static KV cache", "bf16", overrides={"cache_implementation": "static"}, on_builtin=False)]
