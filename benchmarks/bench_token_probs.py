"""What per-token probabilities cost: tokens/s with them off and on (K candidates), and how big and how fast to load a
draft with 100 passages that keep their token data is.

    python benchmarks/bench_token_probs.py [--runs 3] [--new-tokens 100] [--k 10] [--skip-124m]

Models: the built-in one, and a GPT-2-124M-shaped checkpoint with random weights (bench_generation.build_checkpoint).
Runs alternate off/on so load from other processes hits both alike; ``min_new_tokens`` = ``max_new_tokens``; the
median of ``--runs`` after one warm-up each. Target: at most 10 % fewer tokens/s with probabilities on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

STORY = "After the bank job goes wrong, the crew hides in an old warehouse by the docks and waits for"


def speed(source: str, runs: int, new_tokens: int, k: int) -> tuple[float, float]:
    from storyterm.engine.generation import GenerationRequest, StoryEngine
    from storyterm.engine.loading import ModelSpec, load_model
    from storyterm.engine.settings import SamplerSettings

    loaded = load_model(ModelSpec(source, device="cpu", dtype="fp32"))
    engine = StoryEngine(loaded, generate_overrides={"min_new_tokens": new_tokens}, smart_context=False)
    settings = SamplerSettings(max_new_tokens=new_tokens, seed=1, trim_sentences=False)
    genre = loaded.genres[0] if loaded.genres else None
    off = GenerationRequest(genre, STORY, settings=settings)
    on = replace(off, token_probs=k)
    rates: dict[bool, list[float]] = {False: [], True: []}
    for request in (off, on):
        engine.generate(request)  # warm-up
    for _ in range(runs):
        for flag, request in ((False, off), (True, on)):
            result = engine.generate(request)
            rates[flag].append(result.stats.tokens_per_second)
    return statistics.median(rates[False]), statistics.median(rates[True])


def draft_figures(passages: int, new_tokens: int, k: int) -> tuple[int, int, float, float, float]:
    """(bytes without token data, bytes with, load seconds without, with, reading every passage's tokens back)
    for a draft of ``passages`` passages."""
    from storyterm.engine.settings import DEFAULT_SETTINGS
    from storyterm.engine.token_probs import Candidate, TokenInfo
    from storyterm.story.draft import Draft
    from storyterm.story.store import load_draft, save_draft

    words = [" the", " night", " house", ",", ".", " and", " she", " was", " dark", " cold", " old", " door",
             " walked", " slowly", " toward", " light", " he", " said", " nothing", " again"]

    def tokens_for(seed: int) -> tuple[TokenInfo, ...]:
        out = []
        for i in range(new_tokens):
            text = words[(seed * 7 + i * 3) % len(words)]
            top = tuple(Candidate(-1, words[(seed + i + j) % len(words)], 0.31 / (j + 1), 0.27 / (j + 1))
                        for j in range(k))
            out.append(TokenInfo(-1, text, 0.123456 + (i % 7) / 10, 0.0987 + (i % 5) / 10, top))
        return tuple(out)

    sizes, loads, decode = [], [], 0.0
    with tempfile.TemporaryDirectory() as scratch:
        for with_tokens in (False, True):
            draft = Draft("Bench", "horror", text="It began at night.")
            for n in range(passages):
                tokens = tokens_for(n)
                text = "".join(t.text for t in tokens)
                draft.add_alternative(text, genre="horror", settings=DEFAULT_SETTINGS, seed=n, model="builtin",
                                      tokens=tokens if with_tokens else None)
                draft.accept()
            path = Path(scratch) / f"draft-{with_tokens}.json"
            save_draft(draft, path)
            sizes.append(path.stat().st_size)
            times = []
            for _ in range(5):
                started = time.perf_counter()
                loaded = load_draft(path)
                times.append(time.perf_counter() - started)
            if with_tokens:  # the TUI reads a passage's tokens when it shows it (not at load)
                started = time.perf_counter()
                for passage in loaded.passages:
                    assert passage.token_infos() is not None
                decode = time.perf_counter() - started
            loads.append(statistics.median(times))
    return sizes[0], sizes[1], loads[0], loads[1], decode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=100)
    parser.add_argument("--k", type=int, default=8, help="top candidates per token")
    parser.add_argument("--skip-124m", action="store_true", help="only the built-in model")
    args = parser.parse_args(argv)

    rows = []
    models = [("built-in", "builtin")]
    with tempfile.TemporaryDirectory() as scratch:
        if not args.skip_124m:
            from bench_generation import build_checkpoint

            models.append(("GPT-2 124M shape", str(build_checkpoint(Path(scratch) / "gpt2-124m"))))
        for name, source in models:
            off, on = speed(source, args.runs, args.new_tokens, args.k)
            rows.append((name, off, on))
    print(f"| model (CPU, fp32, {args.new_tokens} tokens, K={args.k}) | off tok/s | on tok/s | change "
          "| target ≤ 10 % |")
    print("|---|---|---|---|---|")
    for name, off, on in rows:
        change = (on - off) / off * 100
        print(f"| {name} | {off:.1f} | {on:.1f} | {change:+.1f} % | {'ok' if change >= -10 else 'MISSED'} |")
    plain, with_tokens, load_plain, load_tokens, decode = draft_figures(100, args.new_tokens, args.k)
    print()
    print(f"| draft, 100 passages × {args.new_tokens} tokens, K={args.k} | file size | load | read all tokens |")
    print("|---|---|---|---|")
    print(f"| without token data | {plain / 1024:.0f} KiB | {load_plain * 1000:.1f} ms | – |")
    print(f"| with token data | {with_tokens / 1024:.0f} KiB | {load_tokens * 1000:.1f} ms | {decode * 1000:.0f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
