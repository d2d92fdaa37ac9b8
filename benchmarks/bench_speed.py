"""Issue 6 speed suite: streaming overhead, time to first text, fast CPU paths with their perplexity, long drafts,
peak memory. One command; prints markdown tables and writes them to ``benchmarks/results/speed-<device>.md``.

    python benchmarks/bench_speed.py [--runs 5] [--new-tokens 100] [--device cpu|cuda] [--eval-file FILE]
    python benchmarks/bench_speed.py --side-by-side [options]   # vs llama.cpp: see bench_side_by_side.py

Models: a GPT-2-124M-shaped checkpoint with random weights (built by ``bench_generation.build_checkpoint``; speed
only: its perplexity means nothing) and the built-in model (speed and perplexity on held-out text,
``build/data/plots-dev/eval.txt`` by default — the built-in model's own eval split). Every speed figure is the
median of ``--runs`` timed runs after a warm-up, with min–max; the runs of the variants compared in one table are
interleaved so a change in machine load hits them alike. ``min_new_tokens`` equals ``max_new_tokens``, so EOS
cannot end a run early; sampling uses the engine's defaults and a fixed seed.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the training package (perplexity) lives at the repository root

from bench_generation import PROMPT, build_checkpoint, consume_stream, in_worker_thread  # noqa: E402

DEFAULT_EVAL_FILE = ROOT / "build" / "data" / "plots-dev" / "eval.txt"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
LONG_DRAFT_TOKENS = 5000
SHORT_DRAFT_TOKENS = 100
GENRE = "thriller"


# ---------------------------------------------------------------------------------------------------------------------
# Figures


@dataclass
class Figure:
    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def show(self, digits: int = 1, unit: str = "") -> str:
        if not self.values:
            return "—"
        low, high = min(self.values), max(self.values)
        return f"{self.median:.{digits}f}{unit} ({low:.{digits}f}–{high:.{digits}f})"


def ratio_figure(numerators: Figure, denominators: Figure) -> Figure:
    """Per-run ratios of interleaved runs (so the min–max shows how steady the ratio is)."""
    return Figure([a / b for a, b in zip(numerators.values, denominators.values, strict=True)])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------------
# The machine


def cpu_description() -> str:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
    present = [flag for flag in wanted if flag in flags]
    return f"{model}, {os.cpu_count()} cores" + (f" ({', '.join(present)})" if present else "")


def machine_lines(device: str) -> list[str]:
    import torch
    import transformers

    lines = [
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; load average at start "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}",
        f"- CPU: {cpu_description()}",
        f"- Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} intra-op "
        f"threads, quantized engine {torch.backends.quantized.engine}), transformers {transformers.__version__}",
    ]
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        lines.append(f"- GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}")
    return lines


# ---------------------------------------------------------------------------------------------------------------------
# Text


def held_out_text(eval_file: Path | None) -> str:
    """Real story text for long drafts: the eval stories joined (without their headers), else a repeated prompt."""
    if eval_file and eval_file.is_file():
        from training.common import read_stories

        stories = read_stories([eval_file])
        if stories:
            return "\n\n".join(story.text for story in stories)
    return " ".join([PROMPT + " the night the lights went out."] * 2000)


def draft_of(tokenizer: Any, text: str, tokens: int) -> str:
    """The first ``tokens`` tokens of ``text`` (repeated if it is too short), as text."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    while len(ids) < tokens:
        ids = ids + ids
    return tokenizer.decode(ids[:tokens], skip_special_tokens=True)


# ---------------------------------------------------------------------------------------------------------------------
# Loading and timing


@dataclass
class Variant:
    """A way of running a model: a dtype, optional thread count and extra GenerationConfig fields."""

    label: str
    dtype: str
    threads: int | None = None  # None: what loading the model chose (fast_paths.apply_cpu_threads)
    overrides: dict[str, Any] = field(default_factory=dict)
    include_lm_head: bool = True
    on_builtin: bool = True  # also measured on the built-in model (with perplexity)


def load(checkpoint: Path, path: Variant, device: str):
    from storyterm.engine import fast_paths
    from storyterm.engine.loading import ModelSpec, load_model

    if path.dtype == "int8" and not path.include_lm_head:
        loaded = load_model(ModelSpec(str(checkpoint), device=device, dtype="fp32"))
        loaded.model = fast_paths.quantize_int8(loaded.model, include_lm_head=False)
        loaded.dtype = fast_paths.int8_dtype()
        return loaded
    return load_model(ModelSpec(str(checkpoint), device=device, dtype=path.dtype))


def make_engine(loaded, new_tokens: int, overrides: dict[str, Any] | None = None, smart_context: bool = True):
    from storyterm.engine.generation import StoryEngine

    return StoryEngine(loaded, generate_overrides={"min_new_tokens": new_tokens, **(overrides or {})},
                       smart_context=smart_context)


def request_for(story: str, new_tokens: int):
    from storyterm.engine.generation import GenerationRequest
    from storyterm.engine.settings import DEFAULT_SETTINGS

    return GenerationRequest(GENRE, story, settings=DEFAULT_SETTINGS.with_changes(max_new_tokens=new_tokens, seed=1))


@dataclass
class StreamTiming:
    tokens_per_s: float  # new tokens ÷ wall time from stream() to the end (prefill included)
    first_text_s: float  # stream() → first text piece in the consumer's hands
    decode_tokens_per_s: float  # tokens after the first ÷ the time after the first token
    new_tokens: int
    elapsed_s: float
    result: Any  # the GenerationResult


def timed_stream(engine, request, threads: int | None = None, *, fresh: bool = True) -> StreamTiming:
    """``fresh``: forget the previous passage's window and KV cache first, so a repeated request is read from scratch
    like the bare ``generate`` it is compared with (co-writing sessions pass False: reusing it is their point)."""
    import torch

    if fresh:
        engine.forget_context()
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        result, first_text, elapsed = consume_stream(engine, request)
    finally:
        torch.set_num_threads(previous)
    stats = result.stats
    first_token = stats.time_to_first_token_s or elapsed
    decode = (stats.new_tokens - 1) / max(elapsed - first_token, 1e-9)
    return StreamTiming(stats.new_tokens / elapsed, first_text, decode, stats.new_tokens, elapsed, result)


def warm_up(engine, request) -> None:
    """A few tokens through the same engine (lazy kernel set-up); min_new_tokens lowered to match."""
    overrides = engine._generate_overrides
    saved = dict(overrides)
    overrides["min_new_tokens"] = 4
    try:
        engine.generate(request.__class__(request.genre, request.story, settings=request.settings.with_changes(
            max_new_tokens=4)))
    finally:
        overrides.clear()
        overrides.update(saved)


def cuda_sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


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
    del text_generator, engine, loaded
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


def perplexity(loaded, eval_file: Path) -> float | None:
    from training.common import read_stories
    from training.data import tokenize_stories
    from training.evaluate import language_model_metrics

    stories = [s for s in read_stories([eval_file]) if s.genre in loaded.genres]
    if not stories:
        return None
    tokenizer = loaded.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    metrics = language_model_metrics(loaded.model, tokenize_stories(stories, tokenizer), loaded.context_window,
                                     pad_id, progress=False)
    return metrics["perplexity"]


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
# 5: peak memory, each in a fresh process


def peak_rss_child(checkpoint: str, dtype: str, device: str) -> None:
    """Runs in a subprocess: load, generate 20 tokens, print the peak RSS (and GPU memory) as JSON."""
    report: dict[str, Any] = {}
    if checkpoint != "-":
        from storyterm.engine.devices import dtype_name

        loaded = load(Path(checkpoint), Variant(dtype, dtype), device)
        make_engine(loaded, 20).generate(request_for(PROMPT, 20))
        report["dtype"] = dtype_name(loaded.dtype)
        import torch

        if loaded.device.type == "cuda":
            report["gpu_peak_mb"] = torch.cuda.max_memory_allocated(loaded.device) / 2**20
    else:  # the fixed cost: Python with torch and transformers imported
        import torch  # noqa: F401
        import transformers  # noqa: F401

        import storyterm.engine.generation  # noqa: F401
    report["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(report))


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux keeps ru_maxrss across fork + exec (a child of this big process would report
    the parent's peak), so read VmHWM, the high-water mark of this program's own memory, where there is one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def peak_rss(checkpoint: Path | None, dtype: str, device: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--rss-child", str(checkpoint or "-"), dtype, "--device", device]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------------------
# Report


def check(value: float, target: float, at_least: bool) -> str:
    ok = value >= target if at_least else value <= target
    return "✓" if ok else "✗"


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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--side-by-side" in argv:  # storyterm vs llama.cpp (issue 17): its own script and options
        from bench_side_by_side import main as side_by_side

        return side_by_side([arg for arg in argv if arg != "--side-by-side"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=100)
    parser.add_argument("--passages", type=int, default=5, help="passages per co-writing session (figure 4)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint", type=Path, help="reuse a GPT-2-124M-shaped checkpoint from an earlier run")
    parser.add_argument("--builtin", type=Path, help="the built-in model directory (default: the installed one)")
    parser.add_argument("--eval-file", type=Path, default=DEFAULT_EVAL_FILE, help="held-out line file")
    parser.add_argument("--output", type=Path, help="markdown file to write (default benchmarks/results/speed-DEVICE.md)")
    parser.add_argument("--rss-child", nargs=2, metavar=("CHECKPOINT", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.rss_child:
        peak_rss_child(*args.rss_child, args.device)
        return 0

    from storyterm.engine.devices import dtype_name, resolve_device, resolve_dtype
    from storyterm.engine.loading import BUILTIN_DIR

    import torch

    torch_threads = torch.get_num_threads()  # before any load: an int8 model sets fewer
    gpu = resolve_device(args.device).type == "cuda"
    builtin = args.builtin or BUILTIN_DIR
    eval_file = args.eval_file if args.eval_file and args.eval_file.is_file() else None
    text = held_out_text(eval_file)
    out: list[str] = []

    def emit(line: str = "") -> None:
        out.append(line)
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="storyterm-speed-") as scratch:
        if not args.checkpoint:
            log("building the GPT-2-124M-shaped checkpoint…")
        big = args.checkpoint or build_checkpoint(Path(scratch) / "gpt2-124m-random")
        from transformers import AutoConfig

        big_params = sum(p.numel() for p in _meta_model(big).parameters())
        auto = dtype_name(resolve_dtype("auto", resolve_device(args.device), big_params))
        builtin_params = sum(p.numel() for p in _meta_model(builtin).parameters())
        builtin_auto = dtype_name(resolve_dtype("auto", resolve_device(args.device), builtin_params))
        window = AutoConfig.from_pretrained(big).n_positions
        builtin_window = AutoConfig.from_pretrained(builtin).n_positions

        log(f"1+2: streaming vs bare generate vs pipeline ({auto})…")
        streaming = streaming_section(big, auto, args.device, args.runs, args.new_tokens)
        paths = gpu_paths() if gpu else cpu_paths(torch_threads)
        small_variants = [replace(p) for p in paths if p.on_builtin]
        log("3: fast paths, GPT-2 124M shape…")
        big_paths = paths_section(big, paths, args.device, args.runs, args.new_tokens, None)
        log("3: fast paths, built-in model (with perplexity)…")
        small_paths = paths_section(builtin, small_variants,
                                    args.device, args.runs, args.new_tokens, eval_file)
        log(f"4: long vs short drafts ({auto})…")
        drafts = drafts_section(big, auto, args.device, args.runs, args.new_tokens, text)
        drafts_dynamic = drafts_section(big, auto, args.device, args.runs, args.new_tokens, text,
                                        {"cache_implementation": None})
        drafts_small = drafts_section(builtin, builtin_auto, args.device, args.runs, args.new_tokens, text)
        log(f"4: co-writing sessions of {args.passages} passages, short vs long draft ({auto})…")
        sessions = {smart: sessions_section(big, auto, args.device, args.runs, args.new_tokens, text, args.passages,
                                            smart) for smart in (True, False)}
        sessions_small = sessions_section(builtin, builtin_auto, args.device, args.runs, args.new_tokens, text,
                                          args.passages, True)
        log("5: peak memory…")
        rss = {
            "Python + torch + transformers imported": peak_rss(None, "fp32", args.device),
            "GPT-2 124M shape, fp32": peak_rss(big, "fp32", args.device),
            f"GPT-2 124M shape, auto ({auto})": peak_rss(big, "auto", args.device),
            "built-in model, fp32": peak_rss(builtin, "fp32", args.device),
            f"built-in model, auto ({builtin_auto})": peak_rss(builtin, "auto", args.device),
        }

    fp32_big = next((r for r in big_paths if r.path.dtype == "fp32" and r.speed.values), None)
    working = [r for r in big_paths if r.speed.values and r is not fp32_big]
    fastest = max(working, key=lambda r: r.speed.median, default=None)
    fp32_small = next((r for r in small_paths if r.path.dtype == "fp32"), None)

    def ppl_delta(result: PathResult | None) -> str:
        if result is None or result.perplexity is None or fp32_small is None or fp32_small.perplexity is None:
            return "—"
        return f"{(result.perplexity / fp32_small.perplexity - 1) * 100:+.2f} %"

    same_dtype_small = {r.path.dtype: r for r in small_paths if r.path.include_lm_head}
    emit(f"## storyterm generation speed ({'GPU' if gpu else 'CPU'})")
    emit()
    emit(f"`python benchmarks/bench_speed.py --runs {args.runs} --new-tokens {args.new_tokens} --device {args.device}`"
         f" — median of {args.runs} runs (min–max), {args.new_tokens} new tokens per run.")
    emit()
    for line in machine_lines(args.device):
        emit(line)
    emit(f"- models: GPT-2 124M shape ({big_params / 1e6:.1f} M parameters, random weights, window {window}); "
         f"built-in ({builtin_params / 1e6:.1f} M parameters, window {builtin_window}); held-out text: {eval_file.relative_to(ROOT) if eval_file and eval_file.is_relative_to(ROOT) else eval_file}")
    emit(f"- `dtype auto` here: {auto} for the 124M shape, {builtin_auto} for the built-in model")
    emit()
    emit("| figure (GPT-2 124M shape unless said) | measured | target | |")
    emit("|---|---|---|---|")
    ratio = streaming["ratio"]
    emit(f"| 1. engine streaming ÷ bare `generate` tokens/s ({auto}) | {ratio.show(3)} | ≥ 0.97 | "
         f"{check(ratio.median, 0.97, True)} |")
    first = streaming["first_ratio"]
    emit(f"| 2. first text on screen ÷ seed `pipeline` time-to-story, {args.new_tokens} tokens ({auto}) | "
         f"{first.show(4)} | ≤ 0.05 | {check(first.median, 0.05, False)} |")
    if fastest and fp32_big:
        speedup = ratio_figure(fastest.speed, fp32_big.speed)
        small_same = same_dtype_small.get(fastest.path.dtype)
        emit(f"| 3. fastest {'GPU' if gpu else 'CPU'} path ({fastest.path.label}) ÷ fp32 tokens/s | "
             f"{speedup.show(2, '×')} | ≥ 1.8× | {check(speedup.median, 1.8, True)} |")
        emit(f"| 3. its perplexity vs fp32, built-in model on held-out text | {ppl_delta(small_same)} | ≤ +3 % | "
             f"{_ppl_check(small_same, fp32_small)} |")
    session_ratio = sessions[True]["ratio"]
    emit(f"| 4. {LONG_DRAFT_TOKENS}-token draft ÷ {SHORT_DRAFT_TOKENS}-token draft tokens/s, co-writing session of "
         f"{args.passages} passages, end to end ({auto}) | {session_ratio.show(3)} | ≥ 0.9 | "
         f"{check(session_ratio.median, 0.9, True)} |")
    emit(f"| 4. the same, one passage on a draft just opened (whole window read) | {drafts['ratio'].show(3)} | | |")
    emit(f"| 4. one passage, decoding only (after the first token) | {drafts['decode_ratio'].show(3)} | | |")
    for label, key in (("5. peak RSS, GPT-2 124M shape, fp32", "GPT-2 124M shape, fp32"),
                       (f"5. peak RSS, built-in model, auto ({builtin_auto})", f"built-in model, auto ({builtin_auto})")):
        value = rss[key].get("peak_rss_mb")
        target = "≤ 1.2 GB" if "124M" in label else "—"
        mark = check(value, 1200, False) if value is not None and "124M" in label else ""
        emit(f"| {label} | {_mb(rss[key])} | {target} | {mark} |")
    emit()

    emit("### Paths (engine streaming tokens/s)")
    emit()
    emit("| path | GPT-2 124M shape tok/s | ÷ fp32 | built-in tok/s | built-in perplexity (held-out) | Δ vs fp32 |")
    emit("|---|---|---|---|---|---|")
    small_by_label = {r.path.label: r for r in small_paths}
    for result in big_paths:
        small = small_by_label.get(result.path.label)
        speedup = (ratio_figure(result.speed, fp32_big.speed).show(2, "×")
                   if fp32_big and result.speed.values else "—")
        big_cell = result.speed.show() if not result.error else f"failed: {result.error}"
        small_cell = (small.speed.show() if small and not small.error else
                      (f"failed: {small.error}" if small else "not run"))
        ppl = f"{small.perplexity:.2f}" if small and small.perplexity is not None else "—"
        emit(f"| {result.path.label} | {big_cell} | {speedup} | {small_cell} | {ppl} | {ppl_delta(small)} |")
    emit()

    emit("### Streaming, first text, the seed's pipeline")
    emit()
    emit(f"| {auto}, GPT-2 124M shape | bare `generate` tok/s | engine streaming tok/s | engine: first text on screen "
         f"| seed `pipeline`: time to story |")
    emit("|---|---|---|---|---|")
    emit(f"| median (min–max) | {streaming['bare'].show()} | {streaming['stream'].show()} | "
         f"{streaming['first_text'].show(3, ' s')} | {streaming['pipeline_s'].show(2, ' s')} |")
    emit()

    emit("### Long drafts")
    emit()
    emit("| model | draft | prompt tokens | tok/s end to end | tok/s decoding | first text | `prepare()` "
         "| tokenizing the whole draft |")
    emit("|---|---|---|---|---|---|---|---|")
    for name, figures, dtype in (("GPT-2 124M shape", drafts, auto),
                                 ("GPT-2 124M shape", drafts_dynamic, f"{auto}, dynamic KV cache always"),
                                 ("built-in", drafts_small, builtin_auto)):
        for which, tokens in (("short", SHORT_DRAFT_TOKENS), ("long", LONG_DRAFT_TOKENS)):
            prompt = figures["prompt_tokens"] if which == "long" else figures["short_prompt_tokens"]
            prepare = figures["prepare_ms"].show(1, " ms") if which == "long" else ""
            encode = figures["encode_all_ms"].show(1, " ms") if which == "long" else ""
            emit(f"| {name} ({dtype}) | {tokens} tokens | {prompt} | {figures[which].show()} | "
                 f"{figures[which + '_decode'].show()} | {figures[which + '_first'].show(3, ' s')} | {prepare} | "
                 f"{encode} |")
    emit()

    emit(f"### Co-writing sessions ({args.passages} passages, each appended to the draft before the next)")
    emit()
    emit("| model | smart context | short draft tok/s | long draft tok/s | long ÷ short | first text, long "
         "(mean per passage) | long: prompt read from the cache (passages 2+) |")
    emit("|---|---|---|---|---|---|---|")
    for name, figures, dtype, smart in (("GPT-2 124M shape", sessions[True], auto, "on"),
                                        ("GPT-2 124M shape", sessions[False], auto, "off"),
                                        ("built-in", sessions_small, builtin_auto, "on")):
        emit(f"| {name} ({dtype}) | {smart} | {figures['short'].show()} | {figures['long'].show()} | "
             f"{figures['ratio'].show(3)} | {figures['long_first'].show(3, ' s')} | "
             f"{figures['long_cached'].median * 100:.0f} % |")
    emit()

    emit("### Peak memory (fresh process: load, generate 20 tokens)")
    emit()
    emit("| process | peak RSS |" + (" GPU peak allocated |" if gpu else ""))
    emit("|---|---|" + ("---|" if gpu else ""))
    for label, report in rss.items():
        gpu_cell = f" {report.get('gpu_peak_mb', 0):.0f} MB |" if gpu else ""
        emit(f"| {label} | {_mb(report)} |{gpu_cell}")

    output = args.output or RESULTS_DIR / f"speed-{'cuda' if gpu else 'cpu'}.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(out) + "\n", encoding="utf-8")
    log(f"written to {output}")
    return 0


def _meta_model(checkpoint: Path):
    """The model's modules without allocating weights (to count parameters)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(checkpoint))


def _mb(report: dict[str, Any]) -> str:
    if "error" in report:
        return f"failed: {report['error']}"
    return f"{report['peak_rss_mb']:.0f} MB"


def _ppl_check(result: PathResult | None, reference: PathResult | None) -> str:
    if not result or not reference or result.perplexity is None or reference.perplexity is None:
        return ""
    return check(result.perplexity / reference.perplexity, 1.03, False)


if __name__ == "__main__":
    sys.exit(main())
