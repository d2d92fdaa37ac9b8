"""Held-out story text for the speed benchmarks: long drafts cut from it, and a model's perplexity on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench_generation import PROMPT
from speed_figures import ROOT

DEFAULT_EVAL_FILE = ROOT / "build" / "data" / "plots-dev" / "eval.txt"


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
