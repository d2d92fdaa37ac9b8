"""Loading a model the way storyterm does and timing one streamed passage through its engine (used by
bench_speed.py, bench_side_by_side.py and gguf_gap.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_generation import consume_stream

GENRE = "thriller"


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

    # No sentence grace: every path decodes exactly new_tokens, so bare generate and the stream compare like for like.
    settings = DEFAULT_SETTINGS.with_changes(max_new_tokens=new_tokens, seed=1, trim_sentences=False)
    return GenerationRequest(GENRE, story, settings=settings)


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
