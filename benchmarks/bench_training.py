"""Training throughput on this machine: packing (storyterm's default) vs the seed's line-by-line recipe.

Same data, same model, same batch shape; prints useful tokens per second — tokens that get a loss and are
neither padding nor cut off by truncation — and how much of the data one epoch actually trains on.

    python benchmarks/bench_training.py                      # the built-in model's data from ../shared/data
    python benchmarks/bench_training.py --train-file x.txt --steps 10 --preset mini
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.common import DEFAULT_WORK_DIR, read_stories  # noqa: E402
from training.train import (  # noqa: E402
    PRESETS,
    build_model_from_scratch,
    build_parser,
    make_collator,
    make_datasets,
    order_genres,
    train_tokenizer,
)
from training.data import tokenize_stories  # noqa: E402
from training.train import PreparedData  # noqa: E402


def measure(args, data: PreparedData, line_by_line: bool, steps: int, threads: int) -> dict:
    import torch

    torch.manual_seed(0)
    train_args = build_parser().parse_args([
        "--from-scratch", "--train-file", "unused", "--preset", args.preset, "--block-size", str(args.block_size),
        "--vocab-size", str(args.vocab_size), "--dropout", "0.1", *(["--line-by-line"] if line_by_line else []),
    ])
    dataset, _ = make_datasets(train_args, data)
    collate = make_collator(train_args, data.tokenizer)
    model = build_model_from_scratch(train_args, data.tokenizer)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(dataset), generator=generator).tolist()
    batches = [collate([dataset[i] for i in order[s * args.batch_size:(s + 1) * args.batch_size]])
               for s in range(steps + 1)]
    useful = positions = 0
    elapsed = 0.0
    for step, batch in enumerate(batches):
        started = time.perf_counter()
        loss = model(**{k: v for k, v in batch.items() if k in ("input_ids", "labels", "attention_mask")}).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step == 0:
            continue  # warm-up
        elapsed += time.perf_counter() - started
        labels = batch["labels"]
        useful += int((labels != -100).sum())
        positions += labels.numel()
    story_tokens = sum(s.length for s in data.train_stories)
    if line_by_line:
        trained = sum(len(row) for row in dataset.rows)
    else:
        trained = dataset.useful_tokens()
    return {
        "mode": "line-by-line" if line_by_line else "packed",
        "rows": len(dataset),
        "s_per_step": elapsed / steps,
        "positions_per_step": positions / steps,
        "useful_per_step": useful / steps,
        "useful_tok_s": useful / elapsed,
        "coverage": trained / story_tokens,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_dir = DEFAULT_WORK_DIR / "data"
    parser.add_argument("--train-file", type=Path, nargs="+",
                        default=[data_dir / "plots" / "train.txt", data_dir / "netflix" / "train.txt"],
                        help="line files (default: the built-in model's prepared data under build/data)")
    parser.add_argument("--preset", choices=PRESETS, default="mini")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per mode (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    missing = [str(p) for p in args.train_file if not p.is_file()]
    if missing:
        print(f"error: no such file: {', '.join(missing)} (run python -m training.prepare_data first)",
              file=sys.stderr)
        return 2
    stories = read_stories(args.train_file)
    genres = order_genres({s.genre for s in stories})
    tokenizer = train_tokenizer([s.line() for s in stories], genres, args.vocab_size, args.block_size)
    data = PreparedData(tokenizer, genres, tokenize_stories(stories, tokenizer), [])
    rows = [measure(args, data, line_by_line, args.steps, args.threads) for line_by_line in (False, True)]
    print(f"\n{len(stories)} stories, model preset {args.preset}, batch {args.batch_size} x {args.block_size}, "
          f"torch threads {torch.get_num_threads()}, {args.steps} timed steps per mode\n")
    header = f"{'mode':<13} {'rows':>6} {'s/step':>7} {'positions':>9} {'useful':>7} {'useful tok/s':>12} {'data trained':>12}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['mode']:<13} {r['rows']:>6} {r['s_per_step']:>7.2f} {r['positions_per_step']:>9.0f} "
              f"{r['useful_per_step']:>7.0f} {r['useful_tok_s']:>12.0f} {r['coverage']:>11.0%}")
    print(f"\npacking / line-by-line useful tokens per second: {rows[0]['useful_tok_s'] / rows[1]['useful_tok_s']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
