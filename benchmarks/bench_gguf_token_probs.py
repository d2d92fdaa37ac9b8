#!/usr/bin/env python
"""GGUF engine: when a passage's token probabilities are ready (the editor's probability view and swaps wait for
them), and what measuring them costs the stream. Not run in CI.

    python benchmarks/bench_gguf_token_probs.py MODEL.gguf [MODEL.gguf ...] [--new-tokens 100] [--runs 4]

Per model, probabilities off and on (8 candidates, as the editor asks) alternate, default sampling settings, a
seed per run, after one warm-up each: streamed tokens/s (new tokens over the time to the last streamed piece) and
the milliseconds from the last streamed piece to the result (text and probabilities). Medians, a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path and not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(ROOT / "src"))

STORY = "The night ferry left without its captain."
CANDIDATES = 8  # tui/token_view.py TOKEN_CANDIDATES


def passage(engine, request) -> tuple[float, float]:
    """(streamed tokens/s, ms from the last streamed piece to the result)."""
    stream = engine.stream(request)
    started = last = time.perf_counter()
    for _piece in stream:
        last = time.perf_counter()
    result = stream.result()
    ready = time.perf_counter()
    return result.stats.new_tokens / (last - started), (ready - last) * 1000


def measure(path: str, new_tokens: int, runs: int) -> dict[int, tuple[float, float]]:
    from storyterm.engine.generation import GenerationRequest
    from storyterm.engine.loading import ModelSpec, load_model, open_engine
    from storyterm.engine.settings import SamplerSettings

    loaded = load_model(ModelSpec(path))
    engine = open_engine(loaded)
    genre = loaded.genres[0] if loaded.genres else None
    request = GenerationRequest(genre, STORY, settings=SamplerSettings(max_new_tokens=new_tokens))
    figures: dict[int, list[tuple[float, float]]] = {0: [], CANDIDATES: []}
    for run in range(runs + 1):
        for k in figures:
            figure = passage(engine, replace(request, token_probs=k, settings=replace(request.settings, seed=run)))
            if run:  # run 0 warms up
                figures[k].append(figure)
    return {k: (statistics.median(f[0] for f in rows), statistics.median(f[1] for f in rows))
            for k, rows in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--new-tokens", type=int, default=100)
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    print("| model | probabilities | streamed tok/s | result after the last piece (ms) |")
    print("| --- | --- | ---: | ---: |")
    for path in args.models:
        for k, (rate, late) in measure(path, args.new_tokens, args.runs).items():
            print(f"| {Path(path).name} | {'on (8)' if k else 'off'} | {rate:.1f} | {late:.0f} |")


if __name__ == "__main__":
    main()
