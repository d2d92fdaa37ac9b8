"""The model card (``README.md``) a training run or an evaluation writes beside the checkpoint, with its samples."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from storyterm.engine.loading import context_window_of
from storyterm.engine.prompt import build_header

from .new_model import generation_config_for

SOURCES_FILE = "SOURCES.md"


def write_model_card(path: Path, info: dict) -> None:
    settings = info["settings"]
    lines = [
        f"# {info['name']}",
        "",
        "A genre-conditioned GPT-2 for [storyterm](https://example.invalid/storyterm), trained with "
        "`python -m training.train`.",
        "",
        "Prompt format: `<BOS> <genre> optional prompt…`; training lines `<BOS> <genre> story… <EOS>`.",
        f"Genres: {', '.join(info['genres'])}.",
        "",
        "## Data",
        "",
        *[f"- train: `{p}`" for p in info["train_files"]],
        *[f"- eval: `{p}`" for p in info["eval_files"]],
        f"- training stories: {info['train_stories']} ({info['train_counts']})",
        f"- eval stories: {info['eval_stories']}",
        "",
        *sources_section(info["train_files"]),
        "## Settings",
        "",
        "```json",
        json.dumps(settings, indent=2),
        "```",
        "",
        "## Training",
        "",
        f"- steps: {info['steps']}, tokens seen: {info['tokens_seen']:,}, "
        f"wall time: {info['wall_minutes']:.1f} min",
        f"- parameters: {info['parameters']:,}",
        f"- machine: {info['machine']}",
        f"- final training loss: {format_metric(info.get('train_loss'))}",
        f"- eval loss: {format_metric(info.get('eval_loss'))}, "
        f"eval perplexity: {format_metric(info.get('eval_perplexity'))}",
        "",
    ]
    if info.get("evaluation"):
        lines += ["## Evaluation (`python -m training.evaluate`)", "", "```json",
                  json.dumps(info["evaluation"], indent=2), "```", ""]
    lines += ["## Samples", "",
              "The first sample per genre with the default sampling settings (not cherry-picked):", ""]
    for genre, text in info["samples"].items():
        lines += [f"**{genre}**: {text}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def sources_section(train_files) -> list[str]:
    """The ``SOURCES.md`` that a data recipe wrote beside its training files (sources and licences), if any."""
    folders = dict.fromkeys(Path(p).parent for p in train_files)
    texts = [(folder / SOURCES_FILE).read_text(encoding="utf-8").strip() for folder in folders
             if (folder / SOURCES_FILE).is_file()]
    return [line for text in texts for line in [*text.splitlines(), ""]]


def format_metric(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def sample_per_genre(model, tokenizer, genres: Sequence[str], seed: int, max_new_tokens: int = 80) -> dict[str, str]:
    """The first sample for each genre (seeded, not cherry-picked), generated with the checkpoint's defaults."""
    import torch

    model.eval()
    samples = {}
    config = generation_config_for(tokenizer, genres)
    config.max_new_tokens = max_new_tokens
    for index, genre in enumerate(genres):
        torch.manual_seed(seed + index)
        inputs = tokenizer(build_header(genre), return_tensors="pt", add_special_tokens=False).to(model.device)
        config.max_new_tokens = min(max_new_tokens, context_window_of(model.config) - inputs["input_ids"].shape[1])
        with torch.no_grad():
            output = model.generate(**inputs, generation_config=config)
        samples[genre] = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    return samples
