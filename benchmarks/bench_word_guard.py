"""What the word guard costs: engine tokens/s with the guard off and on, and the guard's own time per step.

    python benchmarks/bench_word_guard.py --known-words build/words.txt [--runs 5] [--new-tokens 100]

Models: the built-in model (``--builtin DIR``: a copy of it that ships words.txt; default: the installed one, which
must ship words.txt or be given ``--known-words``), and a GPT-2-124M-shaped checkpoint with random weights and a
50 257-id byte-level vocabulary (``bench_generation.build_checkpoint``). Both get the same known words.

* engine tok/s: ``StoryEngine.generate`` with the checkpoint's sampling defaults, ``min_new_tokens`` =
  ``max_new_tokens`` (every run writes the same number of tokens), same seeds guard off and on; median of
  ``--runs`` after a warm-up. The random model writes random bytes, so its guarded runs go through the slowest path
  (characters split over tokens) far more often than real text does.
* guard µs/step: the guard's processor alone, replaying real text (held-out plots, or a built-in sentence) token
  by token through each model's tokenizer — the cost on the text a trained model writes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_generation import build_checkpoint  # noqa: E402

from storyterm.engine.words import WORDS_FILE, checkpoint_known_words, read_known_words, write_known_words  # noqa: E402

PROMPT = "The lighthouse keeper hears a knock at midnight."
REPLAY_TEXT = (
    "After the bank job goes wrong, the crew hides in an old warehouse by the docks. Frank, the youngest, wants "
    "to call his mother; the others tie him up. At dawn the police surround the building, and the detective who "
    "has followed them for years walks in alone, unarmed, to talk."
)


def engine_speed(checkpoint: Path, runs: int, new_tokens: int, dtype: str) -> dict[bool, float]:
    from storyterm.engine.generation import GenerationRequest, StoryEngine
    from storyterm.engine.loading import ModelSpec, load_model

    loaded = load_model(ModelSpec(str(checkpoint), device="cpu", dtype=dtype))
    engine = StoryEngine(loaded, generate_overrides={"min_new_tokens": new_tokens})
    assert engine.word_guard_available, checkpoint
    genre = loaded.genres[0] if loaded.genres else None
    speeds: dict[bool, list[float]] = {False: [], True: []}
    for guard in (False, True):  # warm-up (kernels, and the guard's tables)
        settings = loaded.generation_defaults.with_changes(max_new_tokens=8, seed=0, word_guard=guard)
        engine.generate(GenerationRequest(genre, PROMPT, settings=settings.with_changes(max_new_tokens=8)))
    for run in range(runs):
        for guard in (False, True):  # interleaved, so load changes on the machine hit both alike
            settings = loaded.generation_defaults.with_changes(max_new_tokens=new_tokens, seed=run, word_guard=guard)
            engine.forget_context()
            result = engine.generate(GenerationRequest(genre, PROMPT, settings=settings))
            speeds[guard].append(result.stats.tokens_per_second)
    return {guard: statistics.median(values) for guard, values in speeds.items()}


def guard_step_cost(checkpoint: Path, text: str) -> tuple[float, int]:
    """Median µs per processor call replaying ``text``, and the vocabulary size."""
    import torch
    from transformers import AutoTokenizer

    from storyterm.engine.word_guard import WordGuard

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    guard = WordGuard(tokenizer, checkpoint_known_words(checkpoint))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    times = []
    for _ in range(2):  # the second pass is the one measured for cached words; report both passes together
        processor = guard.processor()
        scores = torch.zeros((1, len(tokenizer)))
        for end in range(1, len(ids)):
            started = time.perf_counter()
            processor(torch.tensor([ids[:end]]), scores)
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6, len(tokenizer)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--known-words", type=Path, help="words file (default: the built-in model's words.txt)")
    parser.add_argument("--builtin", type=Path, default=ROOT / "src" / "storyterm" / "models" / "builtin")
    parser.add_argument("--replay", type=Path, help="a text file to replay through the guard (default: a paragraph)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=100)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    known = read_known_words(args.known_words) if args.known_words else checkpoint_known_words(args.builtin)
    if not known:
        print("error: the built-in model ships no words.txt; pass --known-words FILE", file=sys.stderr)
        return 2
    text = args.replay.read_text(encoding="utf-8")[:4000] if args.replay else REPLAY_TEXT
    with tempfile.TemporaryDirectory() as scratch:
        builtin = Path(scratch) / "builtin"
        shutil.copytree(args.builtin, builtin)
        write_known_words(builtin / WORDS_FILE, known)
        print("building the GPT-2-124M-shaped checkpoint…", file=sys.stderr)
        big = build_checkpoint(Path(scratch) / "gpt2-124m-random")
        write_known_words(big / WORDS_FILE, known)
        rows = []
        for name, checkpoint in (("built-in", builtin), ("GPT-2 124M shape, random weights", big)):
            print(f"measuring {name}…", file=sys.stderr)
            speeds = engine_speed(checkpoint, args.runs, args.new_tokens, args.dtype)
            step_us, vocab = guard_step_cost(checkpoint, text)
            rows.append((name, vocab, speeds[False], speeds[True], step_us))
    print(f"{len(known)} known words; {args.new_tokens} new tokens per run, median of {args.runs} runs, dtype "
          f"{args.dtype}, CPU\n")
    print("| model | vocabulary | engine tok/s, guard off | guard on | slowdown | guard µs/step (real text) "
          "| guard share of a step at guard-off speed |")
    print("|---|---|---|---|---|---|---|")
    for name, vocab, off, on, step_us in rows:
        print(f"| {name} | {vocab} | {off:.1f} | {on:.1f} | {100 * (1 - on / off):+.1f} % | {step_us:.0f} "
              f"| {100 * step_us * 1e-6 * off:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
