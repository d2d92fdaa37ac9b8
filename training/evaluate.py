"""Evaluate a checkpoint on a line file and print JSON.

* ``perplexity`` — per token, over every story token after the ``<BOS> <genre>`` header (the end token included);
* ``bits_per_byte`` — the same negative log-likelihood in bits divided by the UTF-8 bytes of the story texts, so
  checkpoints with different tokenizers compare;
* ``genre_accuracy`` — each story is classified by the genre whose header makes its first window most likely;
  overall, per genre, balanced (mean of the per-genre accuracies), a confusion table (true → predicted → count)
  and the header gaps behind it (per true genre, the mean NLL per token under each header minus the true one's);
* ``samples`` — a few continuations per genre, sampled through :mod:`storyterm.engine` with the checkpoint's
  defaults (genre, BOS and PAD tokens suppressed), the first ones drawn, not the best;
* ``invented_words`` — the samples' invented-word rate: the share of their lower-case words that never occur in
  the training text (definition in :mod:`storyterm.engine.words`), with the invented words themselves. The known
  words come from the checkpoint's ``words.txt`` (``training.train`` writes it) or ``--known-words FILE``.

Long stories are scored the way the engine reads them: the header stays, and each window holds the most recent
story tokens (windows overlap by half; only the new tokens of each window count).

Example::

    python -m training.evaluate src/storyterm/models/builtin build/data/plots/eval.txt --output build/eval.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .common import Story, read_stories
from .data import TokenizedStory, genre_headers, tokenize_stories


@dataclass
class Window:
    ids: list[int]
    score_from: int  # positions >= score_from (as targets) are counted


def story_windows(story: TokenizedStory, window: int, stride: int | None = None) -> list[Window]:
    """Header + a slice of the body per window; every body token is scored exactly once."""
    header, body = story.header, story.body
    room = window - len(header)
    if room < 1:
        raise ValueError(f"context window {window} cannot hold the {len(header)}-token header")
    stride = stride or max(1, room // 2)
    windows = [Window(header + body[:room], len(header))]
    end = room
    while end < len(body):
        new_end = min(len(body), end + stride)
        start = max(0, new_end - room)
        windows.append(Window(header + body[start:new_end], len(header) + (end - start)))
        end = new_end
    return windows


def _batched_nll(model, batch: Sequence[Window], pad_id: int) -> list[float]:
    """Summed NLL (nats) of the scored tokens of each window."""
    import torch

    length = max(len(w.ids) for w in batch)
    ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    for row, w in enumerate(batch):
        ids[row, : len(w.ids)] = torch.tensor(w.ids)
        mask[row, : len(w.ids)] = 1
    ids, mask = ids.to(model.device), mask.to(model.device)
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
    log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
    targets = ids[:, 1:]
    token_nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    result = []
    for row, w in enumerate(batch):
        # Target position t predicts ids[t + 1]; score targets with index >= score_from.
        result.append(float(token_nll[row, w.score_from - 1 : len(w.ids) - 1].sum()))
    return result


def language_model_metrics(model, stories: Sequence[TokenizedStory], window: int, pad_id: int,
                           batch_size: int = 8, progress: bool = True) -> dict:
    windows = [(index, w) for index, story in enumerate(stories) for w in story_windows(story, window)]
    total_nll = 0.0
    for start in tqdm(range(0, len(windows), batch_size), desc="perplexity", disable=not progress, leave=False):
        chunk = windows[start : start + batch_size]
        total_nll += sum(_batched_nll(model, [w for _, w in chunk], pad_id))
    tokens = sum(len(s.body) for s in stories)
    text_bytes = sum(s.text_bytes for s in stories)
    return {
        "stories": len(stories),
        "tokens": tokens,
        "bytes": text_bytes,
        "loss": total_nll / tokens,
        "perplexity": math.exp(total_nll / tokens),
        "bits_per_byte": total_nll / math.log(2) / text_bytes,
    }


def genre_scores(model, story: TokenizedStory, headers: dict[str, list[int]], window: int, pad_id: int) -> dict:
    """Mean NLL per token of the story's first window of text under each genre header (the same text tokens for
    every genre, so the lowest is also the lowest total)."""
    room = window - max(len(h) for h in headers.values())
    body = story.body[:room]
    batch = [Window(header + body, len(header)) for header in headers.values()]
    return {genre: nll / len(body) for genre, nll in zip(headers, _batched_nll(model, batch, pad_id), strict=True)}


def genre_accuracy(model, stories: Sequence[TokenizedStory], headers: dict[str, list[int]], window: int,
                   pad_id: int, progress: bool = True) -> dict:
    confusion: dict[str, Counter] = defaultdict(Counter)
    gap_sums: dict[str, Counter] = defaultdict(Counter)
    for story in tqdm(stories, desc="genre accuracy", disable=not progress, leave=False):
        scores = genre_scores(model, story, headers, window, pad_id)
        predicted = min(scores, key=scores.get)
        confusion[story.genre][predicted] += 1
        for genre, nll in scores.items():
            gap_sums[story.genre][genre] += nll - scores[story.genre]
    per_genre = {g: row[g] / sum(row.values()) for g, row in confusion.items()}
    correct = sum(row[g] for g, row in confusion.items())
    return {
        "accuracy": correct / len(stories) if stories else None,
        "balanced_accuracy": sum(per_genre.values()) / len(per_genre) if per_genre else None,
        "chance": 1 / len(headers),
        "per_genre": {g: round(v, 4) for g, v in per_genre.items()},
        "confusion": {g: dict(row) for g, row in confusion.items()},
        # Per true genre, the mean NLL per token under each header minus under the true one: a negative entry is
        # a header that explains that genre's stories better than their own (why a prediction goes wrong).
        "header_gap_nats_per_token": {
            g: {h: round(total / sum(confusion[g].values()), 4) for h, total in row.items()}
            for g, row in gap_sums.items()
        },
    }


def samples(loaded, genres: Sequence[str], per_genre: int, seed: int, max_new_tokens: int) -> dict[str, list[str]]:
    """The first ``per_genre`` samples per genre through the engine, seeded."""
    from storyterm.engine.generation import GenerationRequest, StoryEngine

    engine = StoryEngine(loaded)
    settings = loaded.generation_defaults.with_changes(
        max_new_tokens=min(max_new_tokens, loaded.context_window - 8)
    )
    result: dict[str, list[str]] = {}
    for g_index, genre in enumerate(genres):
        result[genre] = []
        for i in range(per_genre):
            request = GenerationRequest(genre=genre, settings=settings.with_changes(seed=seed + 100 * g_index + i))
            result[genre].append(engine.generate(request).texts[0].strip())
    return result


def evaluate(checkpoint: Path, eval_files: Sequence[Path], *, samples_per_genre: int = 2, max_new_tokens: int = 80,
             max_stories: int | None = None, batch_size: int = 8, seed: int = 0, device: str = "auto",
             dtype: str = "fp32", progress: bool = True, known_words_file: Path | None = None) -> dict:
    """``dtype`` fp32 by default: the metrics describe the trained weights, not the engine's CPU speed path
    (``auto`` would quantize a 5 M+ model to int8; bench_speed.py reports that path's perplexity difference)."""
    import torch

    from storyterm.engine.devices import dtype_name
    from storyterm.engine.loading import ModelSpec, load_model

    threads = torch.get_num_threads()
    loaded = load_model(ModelSpec(source=str(checkpoint), device=device, dtype=dtype))
    # The engine decodes small models on few threads; scoring whole windows in batches wants them all back.
    torch.set_num_threads(threads)
    model, tokenizer = loaded.model, loaded.tokenizer
    raw: list[Story] = read_stories(eval_files)
    unknown = sorted({s.genre for s in raw} - set(loaded.genres))
    raw = [s for s in raw if s.genre in loaded.genres]
    if max_stories:
        raw = raw[:max_stories]
    if not raw:
        raise SystemExit(f"error: no stories of this model's genres ({', '.join(loaded.genres)}) in the eval files")
    stories = tokenize_stories(raw, tokenizer)
    window = loaded.context_window
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    headers = genre_headers(tokenizer, loaded.genres)
    report = {
        "checkpoint": str(checkpoint),
        "eval_files": [str(p) for p in eval_files],
        "context_window": window,
        "dtype": dtype_name(loaded.dtype),
        "parameters": model.num_parameters(),
        "skipped_unknown_genres": unknown,
        "story_counts": dict(Counter(s.genre for s in raw).most_common()),
        **language_model_metrics(model, stories, window, pad_id, batch_size, progress),
        "genre_accuracy": genre_accuracy(model, stories, headers, window, pad_id, progress),
    }
    if samples_per_genre:
        report["samples"] = samples(loaded, loaded.genres, samples_per_genre, seed, max_new_tokens)
        report["invented_words"] = invented_words_report(checkpoint, report["samples"], known_words_file)
    return report


def invented_words_report(checkpoint: Path, texts_by_genre: dict[str, list[str]],
                          known_words_file: Path | None = None) -> dict | None:
    """The samples' invented-word rate against ``known_words_file`` or the checkpoint's words.txt (None: neither)."""
    from storyterm.engine.words import checkpoint_known_words, invented_word_rate, read_known_words

    if known_words_file is not None:
        try:
            known = read_known_words(known_words_file)
        except (OSError, UnicodeDecodeError) as error:
            raise SystemExit(f"error: cannot read --known-words {known_words_file}: {error}") from None
    else:
        known = checkpoint_known_words(checkpoint)
    if not known:
        return None
    texts = [text for group in texts_by_genre.values() for text in group]
    return {"known_words": len(known), **invented_word_rate(texts, known).to_dict()}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.evaluate",
                                description="Perplexity, bits per byte, genre accuracy and samples as JSON.")
    p.add_argument("checkpoint", type=Path, help="a checkpoint directory (e.g. src/storyterm/models/builtin)")
    p.add_argument("eval_files", type=Path, nargs="+", help="<BOS> <genre> … <EOS> line files")
    p.add_argument("--samples-per-genre", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=80)
    p.add_argument("--max-stories", type=int, default=0, help="evaluate only the first N stories (0 = all)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="fp32", help="fp32 (default: the trained weights as they are), bf16, int8, auto")
    p.add_argument("--known-words", type=Path, metavar="FILE",
                   help="words file for the invented-word rate (default: the checkpoint's words.txt)")
    p.add_argument("--output", type=Path, help="also write the JSON here")
    p.add_argument("--update-model-card", action="store_true",
                   help="add the results to the checkpoint's README.md and training_info.json")
    p.add_argument("--no-progress", action="store_true")
    return p


def update_model_card(checkpoint: Path, report: dict) -> None:
    """Rewrite the checkpoint's model card with this evaluation. Samples drawn here (through the engine, with the
    checkpoint's current defaults — what a writer gets) replace the ones training drew, with their invented-word
    rate; without samples the card keeps its own."""
    from .model_card import write_model_card

    info_file = checkpoint / "training_info.json"
    if not info_file.is_file():
        raise SystemExit(f"error: {info_file} not found; --update-model-card needs a checkpoint made by training.train")
    info = json.loads(info_file.read_text(encoding="utf-8"))
    summary = {key: report[key] for key in ("eval_files", "stories", "story_counts", "perplexity", "bits_per_byte")}
    accuracy = report["genre_accuracy"]
    summary["genre_accuracy"] = {key: accuracy[key] for key in ("accuracy", "balanced_accuracy", "chance", "per_genre")}
    if report.get("samples"):
        info["samples"] = {genre: texts[0] for genre, texts in report["samples"].items() if texts}
        if "invented_words" in report:
            summary["samples_invented_word_rate"] = report["invented_words"]["invented_word_rate"]
    info["evaluation"] = summary
    info_file.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_model_card(checkpoint / "README.md", info)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from storyterm.engine.errors import StorytermError

    try:
        report = evaluate(args.checkpoint, args.eval_files, samples_per_genre=args.samples_per_genre,
                          max_new_tokens=args.max_new_tokens, max_stories=args.max_stories or None,
                          batch_size=args.batch_size, seed=args.seed, device=args.device, dtype=args.dtype,
                          progress=not args.no_progress, known_words_file=args.known_words)
    except StorytermError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.update_model_card:
        update_model_card(args.checkpoint, report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
