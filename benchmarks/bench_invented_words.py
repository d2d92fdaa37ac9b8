"""Sampling sweep: invented-word rate and tokens/s over a grid of temperature, top-p, min-p, typical-p and the word
guard, continuing the first sentence of held-out stories; also the share of repeated words (a small model's loops).

Each setting generates ``--passages`` passages per prompt (fixed seeds, the same for every setting) through the
engine, and the table gives the share of the passages' lower-case words that are not in the known words
(definition: ``storyterm.engine.words``), the invented spellings met most often, and tokens/s; beside it the same
for Title-case words ("Frogramed", "Anna"), where a word of the request's prompt also counts as real. A passage cut by the
token limit in the middle of a word has that last fragment left out (``--keep-cut-words`` counts it).

The lead picks the built-in model's ``generation_config.json`` defaults from this table::

    python -m training.prepare_data --builtin-recipe     # held-out plots in build/data/plots/eval.txt
    python benchmarks/bench_invented_words.py --checkpoint src/storyterm/models/builtin \\
        --prompts build/data/plots/eval.txt --prompt-count 30 --passages 2 \\
        --temperature 1.2 0.9 --top-p 0.95 --min-p 0 0.05 0.1 --guard on off

Unset grid axes take the checkpoint's defaults; ``--known-words FILE`` replaces the checkpoint's ``words.txt`` (the
guard uses the checkpoint's own list: pass a checkpoint that ships one to measure it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from storyterm.engine.context import SENTENCE_END  # noqa: E402
from storyterm.engine.prompt import parse_training_line  # noqa: E402
from storyterm.engine.words import (  # noqa: E402
    WORD,
    capitalised_invented_rate,
    invented_word_rate,
    read_known_words,
    repeated_word_share,
)


def first_sentences(path: Path, genres: Sequence[str], count: int) -> list[tuple[str | None, str]]:
    """(genre, first sentence) of the first ``count`` stories of a line file whose genre the model knows (a plain
    text file: one prompt per line, no genre — for a model in free mode)."""
    prompts: list[tuple[str | None, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        parsed = parse_training_line(line)
        genre, text = parsed if parsed else (None, line.strip())
        if genres and genre not in genres:
            continue
        end = SENTENCE_END.search(text)
        prompts.append((genre, text[: end.end()] if end else text))
        if len(prompts) >= count:
            break
    return prompts


def human_repeated_share(path: Path, prompts: Sequence[tuple[str | None, str]], words: int = 60) -> float:
    """repeated_word_share of what the human stories say after the prompt (their next ``words`` words)."""
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parsed = parse_training_line(line) if line.strip() else None
        text = parsed[1] if parsed else line.strip()
        for _genre, prompt in prompts:
            if text.startswith(prompt):
                texts.append(" ".join(text[len(prompt):].split()[:words]))
                break
    return repeated_word_share(texts)


def drop_cut_word(text: str) -> str:
    """``text`` without a last word the token limit cut (letters right at the end)."""
    match = WORD.search(text[-1:]) if text else None
    if not match:
        return text
    return text[: len(text) - len(WORD.findall(text)[-1])]


@dataclass
class Row:
    settings: dict
    texts: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)  # the exact text the model was given, per passage
    new_tokens: int = 0
    seconds: float = 0.0


def run_grid(engine, prompts, grid: list[dict], passages: int, max_new_tokens: int, known: frozenset[str],
             keep_cut_words: bool, progress: bool = True) -> list[dict]:
    from storyterm.engine.generation import GenerationRequest

    defaults = engine.loaded.generation_defaults
    results = []
    for index, changes in enumerate(grid):
        row = Row(changes)
        settings = defaults.with_changes(max_new_tokens=max_new_tokens, num_alternatives=1, **changes)
        started = time.perf_counter()
        genre, prompt = prompts[0]  # warm-up (kernels, the guard's tables): not timed
        engine.generate(GenerationRequest(genre, prompt, settings=settings.with_changes(max_new_tokens=4, seed=0)))
        for p_index, (genre, prompt) in enumerate(prompts):
            for n in range(passages):
                request = GenerationRequest(genre, prompt, settings=settings.with_changes(seed=1000 * p_index + n))
                engine.forget_context()
                result = engine.generate(request)
                text = result.text
                if not keep_cut_words and result.stats.new_tokens >= max_new_tokens:
                    text = drop_cut_word(text)
                row.texts.append(text)
                row.prompts.append(engine.prompt_text(request))
                row.new_tokens += result.stats.new_tokens
                row.seconds += result.stats.elapsed_s
        report = invented_word_rate(row.texts, known)
        capitalised = capitalised_invented_rate(zip(row.texts, row.prompts, strict=True), known)
        results.append({
            **changes,
            "passages": len(row.texts),
            "checked_words": report.checked,
            "invented_words_count": report.invented,
            "invented_word_rate": report.rate,
            "repeated_word_share": repeated_word_share(row.texts),
            "tokens_per_second": row.new_tokens / row.seconds if row.seconds else 0.0,
            "most_common_invented": [w for w, _ in report.invented_words.most_common(5)],
            "title_case_words": capitalised.checked,
            "capitalised_invented_count": capitalised.invented,
            "capitalised_invented_rate": capitalised.rate,
            "most_common_capitalised_invented": [w for w, _ in capitalised.invented_words.most_common(5)],
            "example": row.texts[0][:200],
        })
        if progress:
            print(f"[{index + 1}/{len(grid)}] {changes}: {report.rate:.2%} invented, "
                  f"{capitalised.rate:.2%} capitalised invented, "
                  f"{results[-1]['tokens_per_second']:.0f} tok/s ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)
    return results


def markdown_table(results: list[dict], axes: Sequence[str]) -> str:
    head = [*axes, "passages", "lower-case words", "invented", "invented %", "Title-case words", "invented",
            "invented %", "repeated %", "tok/s", "most common invented (lower-case; Title-case)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [("on" if r[a] else "off") if a == "word_guard" else f"{r[a]:g}" for a in axes]
        cells += [str(r["passages"]), str(r["checked_words"]), str(r["invented_words_count"]),
                  f"{100 * r['invented_word_rate']:.2f}", str(r["title_case_words"]),
                  str(r["capitalised_invented_count"]), f"{100 * r['capitalised_invented_rate']:.2f}",
                  f"{100 * r['repeated_word_share']:.1f}", f"{r['tokens_per_second']:.0f}",
                  (", ".join(r["most_common_invented"]) or "—") + "; "
                  + (", ".join(r["most_common_capitalised_invented"]) or "—")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="builtin", help="builtin (default) or a checkpoint directory")
    p.add_argument("--prompts", type=Path, required=True,
                   help="held-out stories (<BOS> <genre> … <EOS> lines; the first sentence of each is the prompt)")
    p.add_argument("--prompt-count", type=int, default=20)
    p.add_argument("--passages", type=int, default=1, help="passages per prompt and setting")
    p.add_argument("--max-new-tokens", type=int, default=80)
    p.add_argument("--known-words", type=Path, help="words file (default: the checkpoint's words.txt)")
    p.add_argument("--temperature", type=float, nargs="+")
    p.add_argument("--top-p", type=float, nargs="+")
    p.add_argument("--top-k", type=int, nargs="+")
    p.add_argument("--min-p", type=float, nargs="+")
    p.add_argument("--typical-p", type=float, nargs="+")
    p.add_argument("--repetition-penalty", type=float, nargs="+")
    p.add_argument("--guard", choices=["on", "off"], nargs="+", help="word guard on/off (default: both)")
    p.add_argument("--keep-cut-words", action="store_true", help="count a last word cut by the token limit")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--json", type=Path, help="also write the results here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from storyterm.engine.generation import StoryEngine
    from storyterm.engine.loading import ModelSpec, load_model

    loaded = load_model(ModelSpec(args.checkpoint, device=args.device, dtype=args.dtype))
    known = read_known_words(args.known_words) if args.known_words else (loaded.known_words or (lambda: None))()
    if not known:
        print("error: no known words: the checkpoint has no words.txt; pass --known-words FILE", file=sys.stderr)
        return 2
    engine = StoryEngine(loaded)
    if not engine.word_guard_available and args.guard != ["off"]:
        print("note: the checkpoint ships no words.txt, so the guard cannot act; measuring guard off only",
              file=sys.stderr)
        args.guard = ["off"]
    prompts = first_sentences(args.prompts, loaded.genres, args.prompt_count)
    if not prompts:
        print(f"error: no prompts of this model's genres in {args.prompts}", file=sys.stderr)
        return 2
    axes = {"temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k, "min_p": args.min_p,
            "typical_p": args.typical_p, "repetition_penalty": args.repetition_penalty,
            "word_guard": [g == "on" for g in (args.guard or ["on", "off"])]}
    defaults = loaded.generation_defaults
    values = {name: options or [getattr(defaults, name)] for name, options in axes.items()}
    grid = [dict(zip(values, combo, strict=True)) for combo in itertools.product(*values.values())]
    results = run_grid(engine, prompts, grid, args.passages, args.max_new_tokens, known, args.keep_cut_words)
    shown = [name for name, options in values.items() if len(options) > 1] or ["word_guard"]
    fixed = {name: options[0] for name, options in values.items() if name not in shown}
    print(f"checkpoint {args.checkpoint} ({loaded.dtype}, {loaded.device}); {len(prompts)} prompts (first sentences of "
          f"{args.prompts}) × {args.passages} passage(s) × {args.max_new_tokens} new tokens; known words: "
          f"{len(known)}; fixed: {', '.join(f'{k}={v}' for k, v in fixed.items())}; cut last words "
          f"{'counted' if args.keep_cut_words else 'left out'}; repeated words in the human stories' text after the "
          f"prompt: {100 * human_repeated_share(args.prompts, prompts):.1f} %")
    print()
    print(markdown_table(results, shown))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
