"""Generation speed on this machine: bare ``model.generate`` vs. the storyterm engine's streaming vs. the seed's
``pipeline("text-generation")`` call, for a GPT-2-124M-shaped model with random weights.

    python benchmarks/bench_generation.py [--runs 3] [--new-tokens 200] [--dtypes fp32,bf16] [--device cpu]

Prints a markdown table (median of ``--runs`` timed runs after one warm-up). ``min_new_tokens`` equals
``max_new_tokens`` everywhere, so an early EOS cannot shorten a run. All three paths use the same
GenerationConfig (the engine's: sampling defaults, suppressed genre/BOS/PAD tokens) and the same seed.
The bare and pipeline calls also run in a worker thread, like the engine's: under CPU contention (training
running on the same cores) torch's thread pool behaves very differently in the main thread, and the ratio is
meant to show the cost of streaming, not of that.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any
from pathlib import Path

GPT2_VOCAB = 50257
PROMPT = "After the bank job goes wrong, the crew hides in an old warehouse by the docks and waits for"


def build_checkpoint(path: Path) -> Path:
    """GPT-2 124M shape (12 layers, 768 wide, 1024 positions, 50 257 ids), random weights, storyterm tokens."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from storyterm.engine.prompt import BOS_TOKEN, CLASSIC_GENRES, EOS_TOKEN, PAD_TOKEN, genre_token

    specials = [BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, *(genre_token(g) for g in CLASSIC_GENRES)]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {char: index for index, char in enumerate(sorted(alphabet))}
    # Fill the vocabulary up to GPT-2's size with two-byte pieces: ids the random model can sample and decode.
    for first in sorted(alphabet):
        for second in sorted(alphabet):
            if len(vocab) >= GPT2_VOCAB - len(specials):
                break
            vocab.setdefault(first + second, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=specials[3:],
        model_max_length=1024,
    )
    assert len(tokenizer) == GPT2_VOCAB, len(tokenizer)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=GPT2_VOCAB,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def in_worker_thread(function: Callable[[], Any]) -> Any:
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(function()))
    thread.start()
    thread.join()
    return outcome[0]


def consume_stream(engine, request) -> tuple[Any, float, float]:
    """Run ``engine.stream(request)`` to the end: (its GenerationResult, seconds to the first text piece, seconds in
    all). With no text at all, the first piece counts as arriving at the end."""
    started = time.perf_counter()
    stream = engine.stream(request)
    first_piece = None
    for _piece in stream:
        if first_piece is None:
            first_piece = time.perf_counter() - started
    result = stream.result()
    elapsed = time.perf_counter() - started
    return result, first_piece if first_piece is not None else elapsed, elapsed


def measure(checkpoint: Path, dtype: str, device: str, runs: int, new_tokens: int) -> dict[str, float]:
    import torch
    from transformers import pipeline

    from storyterm.engine.generation import GenerationRequest, StoryEngine
    from storyterm.engine.loading import ModelSpec, load_model
    from storyterm.engine.settings import DEFAULT_SETTINGS

    loaded = load_model(ModelSpec(str(checkpoint), device=device, dtype=dtype))
    engine = StoryEngine(loaded, generate_overrides={"min_new_tokens": new_tokens})
    settings = DEFAULT_SETTINGS.with_changes(max_new_tokens=new_tokens, seed=1)
    request = GenerationRequest("thriller", PROMPT, settings=settings)
    prompt_ids = engine.prepare(request).input_ids
    config = engine.generation_config(settings)
    input_ids = torch.tensor([prompt_ids], device=loaded.device)
    text_generator = pipeline("text-generation", model=loaded.model, tokenizer=loaded.tokenizer)
    prompt_text = loaded.tokenizer.decode(prompt_ids)

    def bare() -> tuple[float, float]:
        return in_worker_thread(bare_in_thread)

    def bare_in_thread() -> tuple[float, float]:
        torch.manual_seed(1)
        started = time.perf_counter()
        with torch.inference_mode():
            output = loaded.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                           generation_config=config)
        elapsed = time.perf_counter() - started
        assert output.shape[1] - input_ids.shape[1] == new_tokens
        return new_tokens / elapsed, elapsed

    def streamed() -> tuple[float, float, float]:
        result, first_piece, elapsed = consume_stream(engine, request)
        assert result.stats.new_tokens == new_tokens, result.stats
        return new_tokens / elapsed, first_piece, result.stats.time_to_first_token_s or elapsed

    def seed_pipeline() -> tuple[float, float]:
        return in_worker_thread(pipeline_in_thread)

    def pipeline_in_thread() -> tuple[float, float]:
        torch.manual_seed(1)
        started = time.perf_counter()
        text_generator(prompt_text, generation_config=config, return_full_text=False)
        elapsed = time.perf_counter() - started
        return new_tokens / elapsed, elapsed  # the seed showed nothing until the whole passage was done

    # Warm-up (lazy initialisation of kernels, the pipeline, the tokenizer) with a few tokens only.
    warm_config = copy.deepcopy(config)
    warm_config.max_new_tokens = warm_config.min_new_tokens = 4
    in_worker_thread(lambda: loaded.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                                   generation_config=warm_config))
    StoryEngine(loaded).generate(GenerationRequest("thriller", PROMPT, settings=settings.with_changes(max_new_tokens=4)))
    in_worker_thread(lambda: text_generator(prompt_text, generation_config=warm_config, return_full_text=False))
    bare_runs, stream_runs, pipe_runs = [], [], []
    for run in range(runs):  # interleaved so a change in machine load hits every column alike
        bare_runs.append(bare())
        stream_runs.append(streamed())
        pipe_runs.append(seed_pipeline())
        print(f"  {dtype} run {run + 1}/{runs}: bare {bare_runs[-1][0]:.1f} tok/s, engine {stream_runs[-1][0]:.1f} "
              f"tok/s, pipeline {pipe_runs[-1][0]:.1f} tok/s", file=sys.stderr, flush=True)
    median = statistics.median
    bare_tps = median(r[0] for r in bare_runs)
    stream_tps = median(r[0] for r in stream_runs)
    return {
        "bare_tps": bare_tps,
        "stream_tps": stream_tps,
        "ratio": stream_tps / bare_tps,
        "first_piece_s": median(r[1] for r in stream_runs),
        "first_token_s": median(r[2] for r in stream_runs),
        "pipe_tps": median(r[0] for r in pipe_runs),
        "pipe_first_s": median(r[1] for r in pipe_runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint", type=Path, help="reuse a checkpoint built by an earlier run")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"GPT-2 124M shape, random weights, {args.new_tokens} new tokens (min_new_tokens = max_new_tokens), "
          f"sampling with the default settings, median of {args.runs} runs; device {args.device}, "
          f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}.")
    print()
    print("| dtype | bare `generate` tok/s | engine streaming tok/s | ratio | engine: first token | "
          "engine: first text on screen | seed's `pipeline` tok/s | seed's `pipeline`: first text |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    with tempfile.TemporaryDirectory(prefix="storyterm-bench-") as scratch:
        checkpoint = args.checkpoint or build_checkpoint(Path(scratch) / "gpt2-124m-random")
        for dtype in args.dtypes.split(","):  # each row printed as soon as it is measured
            print(f"measuring {dtype}…", file=sys.stderr, flush=True)
            m = measure(checkpoint, dtype, args.device, args.runs, args.new_tokens)
            print(f"| {dtype} | {m['bare_tps']:.1f} | {m['stream_tps']:.1f} | {m['ratio']:.3f} | "
                  f"{m['first_token_s']:.3f} s | {m['first_piece_s']:.3f} s | {m['pipe_tps']:.1f} | "
                  f"{m['pipe_first_s']:.2f} s |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
