"""Train a genre-conditioned GPT-2 with the Hugging Face Trainer.

Two modes:

* fine-tune (default): start from ``--model-name-or-path`` (a hub id such as ``gpt2`` or a local directory), add
  ``<BOS>``/``<EOS>``/``<PAD>`` and one ``<genre>`` token per genre as special tokens and resize the embeddings —
  the seed's recipe;
* ``--from-scratch``: a GPT-2 config preset and a new byte-level BPE tokenizer trained on the training lines, with
  the same special tokens — the offline path that produced storyterm's built-in model.

Stories are packed into full blocks by default, with the ``<BOS> <genre>`` header repeated at the start of every
continuation (see :mod:`training.data`); ``--line-by-line`` reproduces the seed's one-padded-story-per-row recipe.
The output directory receives a complete checkpoint: safetensors weights, the tokenizer with the genre tokens,
``generation_config.json`` with the seed's sampling defaults, ``words.txt`` (every word of the training text, for
the invented-word metric and the word guard; also in each intermediate ``checkpoint-N``), and a model card
(``README.md``).

Runs unchanged on a CPU, one GPU, or several under ``accelerate launch`` / ``torchrun`` (the Trainer handles
devices and distribution).
"""

from __future__ import annotations

import argparse
import logging
import math
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from storyterm.engine.loading import context_window_of
from storyterm.engine.prompt import genres_from_special_tokens
from storyterm.engine.words import known_words_from_texts, write_known_words

from .common import DEFAULT_WORK_DIR, read_stories, setup_logging, write_json
from .data import (
    LineDataset,
    TokenizedStory,
    balance_repeats,
    build_packed_dataset,
    genre_headers,
    tokenize_stories,
)
from .genre_contrast import (MEMORY_MODES, GenreContrast, contrast_stories, genre_token_ids, train_only_genre_rows,
                             with_genre_contrast)
from .model_card import format_metric, sample_per_genre, write_model_card
from .new_model import (
    PRESETS,
    add_prompt_tokens,
    build_model_from_scratch,
    generation_config_for,
    load_base_model,
    order_genres,
    train_tokenizer,
)

log = logging.getLogger("training.train")

@dataclass
class PreparedData:
    tokenizer: object
    genres: list[str]
    train_stories: list[TokenizedStory]
    eval_stories: list[TokenizedStory]
    known_words: set[str]  # every word of the training text, for words.txt (storyterm.engine.words)


def prepare(args: argparse.Namespace) -> tuple[PreparedData, object]:
    train_raw = read_stories(args.train_file)
    eval_raw = read_stories(args.eval_file or [])
    if not train_raw:
        raise SystemExit(f"error: no <BOS> <genre> … <EOS> lines in {', '.join(map(str, args.train_file))}")
    genres = order_genres({s.genre for s in train_raw if s.genre is not None})
    if args.from_scratch:
        log.info("training a %d-token byte-level BPE on %d stories…", args.vocab_size, len(train_raw))
        tokenizer = train_tokenizer([s.line() for s in train_raw], genres, args.vocab_size, args.block_size)
        model = build_model_from_scratch(args, tokenizer)
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
        add_prompt_tokens(tokenizer, genres)
        model = load_base_model(args, tokenizer)
        genres = genres_from_special_tokens(tokenizer.all_special_tokens)
    positions = context_window_of(model.config)
    if args.block_size > positions:
        raise SystemExit(f"error: --block-size {args.block_size} exceeds the model's {positions} positions")
    tokenizer.model_max_length = positions
    eval_raw = [s for s in eval_raw if s.genre in genres]
    data = PreparedData(
        tokenizer=tokenizer,
        genres=genres,
        train_stories=tokenize_stories(train_raw, tokenizer),
        eval_stories=tokenize_stories(eval_raw, tokenizer),
        known_words=known_words_from_texts(s.text for s in train_raw),
    )
    return data, model


def make_datasets(args: argparse.Namespace, data: PreparedData):
    pad_id = data.tokenizer.pad_token_id
    if args.line_by_line:
        repeats = balance_repeats(data.train_stories, args.balance_genres)
        pool = [s for s, n in zip(data.train_stories, repeats, strict=True) for _ in range(n)]
        train = LineDataset(pool, args.block_size)
        evaluation = LineDataset(data.eval_stories, args.block_size) if data.eval_stories else None
    else:
        # Epochs are packed here (fresh shuffle each); the Trainer makes one pass over them.
        train = build_packed_dataset(
            data.train_stories, args.block_size, pad_id,
            epochs=args.epochs, seed=args.seed, balance=args.balance_genres,
        )
        evaluation = (
            build_packed_dataset(data.eval_stories, args.block_size, pad_id, epochs=1, seed=args.seed)
            if data.eval_stories
            else None
        )
        if evaluation is not None and len(evaluation) == 0:
            evaluation = None
    return train, evaluation


def make_collator(args: argparse.Namespace, tokenizer):
    from transformers import DataCollatorForLanguageModeling, default_data_collator

    if args.line_by_line:
        return DataCollatorForLanguageModeling(tokenizer, mlm=False)
    return default_data_collator


class KnownWordsWriter:
    """Writes ``words.txt`` into every intermediate checkpoint the Trainer saves (``checkpoint-N/``)."""

    def __new__(cls, words: set[str]):
        from transformers import TrainerCallback

        class _KnownWordsWriter(TrainerCallback):
            def on_save(self, args, state, control, **kwargs):
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if state.is_world_process_zero and folder.is_dir():
                    write_known_words(folder, words)
                return control

        return _KnownWordsWriter()


class TimeLimit:
    """Stops training (with a final save) once ``minutes`` of wall time have passed."""

    def __new__(cls, minutes: float):
        from transformers import TrainerCallback

        class _TimeLimit(TrainerCallback):
            def __init__(self) -> None:
                self.deadline = time.monotonic() + minutes * 60

            def on_step_end(self, args, state, control, **kwargs):
                if time.monotonic() >= self.deadline:
                    log.info("time limit of %.1f min reached at step %d; stopping", minutes, state.global_step)
                    control.should_training_stop = True
                    control.should_save = True
                return control

        return _TimeLimit()


def make_trainer_class(time_budget_minutes: float | None):
    """The HF Trainer, or one whose learning rate follows the wall clock: linear warm-up over the warm-up steps,
    then a cosine to zero that ends exactly when ``time_budget_minutes`` run out (the TimeLimit callback stops
    training then). On a shared machine the number of steps that fit is unknown in advance; this way the
    schedule still anneals fully. ``--resume`` restarts the clock for the remaining budget."""
    from transformers import Trainer

    if not time_budget_minutes:
        return Trainer

    class TimeScheduledTrainer(Trainer):
        def create_scheduler(self, num_training_steps: int, optimizer=None):
            import torch

            if self.lr_scheduler is None:
                warmup = self.args.get_warmup_steps(num_training_steps)
                if 0 < self.args.warmup_steps < 1:
                    warmup = 50  # a fraction of an unknown step count: use a fixed, short warm-up
                budget = time_budget_minutes * 60
                clock: dict[str, float] = {}

                def factor(step: int) -> float:
                    start = clock.setdefault("start", time.monotonic())
                    if step < warmup:
                        return (step + 1) / (warmup + 1)
                    progress = min(1.0, (time.monotonic() - start) / budget)
                    return 0.5 * (1 + math.cos(math.pi * progress))

                self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer, factor)
                self._created_lr_scheduler = True
            return self.lr_scheduler

    return TimeScheduledTrainer


def training_arguments(args: argparse.Namespace, train_size: int, has_eval: bool):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(args.output_dir / "checkpoints"),
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup,
        lr_scheduler_type=args.lr_scheduler,
        # A time-scheduled run stops on the clock; max_steps only needs to be out of reach.
        max_steps=args.max_steps if args.max_steps else (10**7 if args.max_minutes else -1),
        num_train_epochs=1 if not args.line_by_line else args.epochs,
        logging_steps=args.logging_steps,
        eval_strategy="steps" if has_eval and args.eval_steps else "no",
        eval_steps=args.eval_steps or None,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=2,
        seed=args.seed,
        data_seed=args.seed,
        report_to="none",
        dataloader_num_workers=0,
        dataloader_pin_memory=_has_cuda(),
        disable_tqdm=args.no_progress,
        use_cpu=args.cpu,
        bf16=args.bf16,
        fp16=args.fp16,
        max_grad_norm=1.0,
        adam_beta2=0.99,
    )


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def perplexity_from_loss(loss: float | None) -> float | None:
    if loss is None or not math.isfinite(loss):
        return None
    return math.exp(min(loss, 50.0))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--train-file", type=Path, nargs="+", required=True, help="training line files")
    p.add_argument("--eval-file", type=Path, nargs="*", default=[], help="line files for the perplexity eval")
    p.add_argument("--output-dir", type=Path, default=DEFAULT_WORK_DIR / "model", help="where the checkpoint goes")
    mode = p.add_argument_group("model")
    mode.add_argument("--from-scratch", action="store_true", help="new tokenizer + GPT-2 config preset")
    mode.add_argument("--model-name-or-path", default="gpt2", help="base checkpoint to fine-tune (default gpt2)")
    mode.add_argument("--preset", choices=PRESETS, default="mini", help="GPT-2 shape for --from-scratch")
    mode.add_argument("--architecture", choices=("gpt2", "llama"), default="gpt2",
                      help="--from-scratch model family: GPT-2, or Llama-style (rotary, RMSNorm, SwiGLU)")
    mode.add_argument("--n-layer", type=int, help="override the preset's layers")
    mode.add_argument("--n-embd", type=int, help="override the preset's width")
    mode.add_argument("--n-head", type=int, help="override the preset's heads")
    mode.add_argument("--vocab-size", type=int, default=8000, help="BPE vocabulary for --from-scratch (8000)")
    mode.add_argument("--dropout", type=float, default=None, help="dropout (scratch default 0.1)")
    data = p.add_argument_group("data")
    data.add_argument("--block-size", type=int, default=256, help="tokens per training row (256)")
    data.add_argument("--line-by-line", action="store_true", help="one padded, truncated story per row (seed)")
    data.add_argument("--balance-genres", type=float, default=1.0, metavar="POWER",
                      help="repeat stories so genre g weighs n_g**POWER: 1 = as is (default), 0.5 = sqrt, 0 = flat")
    data.add_argument("--epochs", type=int, default=1, help="passes over the data (1)")
    data.add_argument("--genre-contrast", type=float, default=0.0, metavar="WEIGHT",
                      help="add WEIGHT x the genre-classifier loss (the header must explain its story; 0 = off)")
    data.add_argument("--genre-contrast-window", type=int, default=128,
                      help="story tokens the genre-classifier loss reads (128)")
    data.add_argument("--genre-contrast-memory", choices=MEMORY_MODES, default="keep",
                      help="stories with a Memory header in the genre loss: keep, strip the header, or skip them")
    data.add_argument("--genre-contrast-batch", type=int, default=4,
                      help="stories per step for the genre-classifier loss, each read under every genre (4)")
    data.add_argument("--train-only", choices=("all", "genre-tokens"), default="all",
                      help="genre-tokens: freeze the model but the genre tokens' embeddings (no weight decay)")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=int, default=16)
    opt.add_argument("--gradient-accumulation-steps", type=int, default=1)
    opt.add_argument("--learning-rate", type=float, default=5e-4)
    opt.add_argument("--weight-decay", type=float, default=0.1)
    opt.add_argument("--warmup", type=float, default=0.05, help="warm-up steps, or a fraction of all steps (0.05)")
    opt.add_argument("--lr-scheduler", default="cosine")
    opt.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = all epochs)")
    opt.add_argument("--max-minutes", type=float, default=0,
                     help="stop (and save) after this much wall time; without --max-steps the learning-rate "
                          "schedule follows the clock and anneals exactly then")
    opt.add_argument("--seed", type=int, default=42)
    run = p.add_argument_group("run")
    run.add_argument("--logging-steps", type=int, default=20)
    run.add_argument("--eval-steps", type=int, default=200, help="evaluate every N steps (0 = only at the end)")
    run.add_argument("--save-steps", type=int, default=200)
    run.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                     help="resume from the last checkpoint in OUTPUT_DIR/checkpoints (or the one given)")
    run.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)")
    run.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    run.add_argument("--bf16", action="store_true")
    run.add_argument("--fp16", action="store_true")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (for log files)")
    run.add_argument("--skip-samples", action="store_true", help="no samples in the model card")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    if args.dropout is None and args.from_scratch:
        args.dropout = 0.1
    import torch
    from transformers import set_seed

    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)
    started = time.monotonic()
    data, model = prepare(args)
    tokenizer = data.tokenizer
    train_dataset, eval_dataset = make_datasets(args, data)
    if len(train_dataset) == 0:
        raise SystemExit("error: not enough training text for one block; lower --block-size or add data")
    log.info("genres: %s", ", ".join(data.genres))
    log.info("model: %s parameters, context %d; %d training rows of ≤%d tokens",
             f"{model.num_parameters():,}", context_window_of(model.config), len(train_dataset), args.block_size)

    headers = genre_headers(tokenizer, data.genres)
    if args.train_only == "genre-tokens":
        if args.weight_decay:
            log.info("--train-only genre-tokens: weight decay %s -> 0 (it would move the frozen rows)",
                     args.weight_decay)
            args.weight_decay = 0.0
        count = train_only_genre_rows(model, genre_token_ids(headers))
        log.info("training only the genre tokens' embeddings: %d values", count)

    callbacks = [KnownWordsWriter(data.known_words)]
    callbacks += [TimeLimit(args.max_minutes)] if args.max_minutes else []
    trainer_class = make_trainer_class(args.max_minutes if args.max_minutes and not args.max_steps else None)
    if args.genre_contrast:
        scored = contrast_stories(data.train_stories, tokenizer.decode, args.genre_contrast_memory)
        contrast = GenreContrast(scored, headers, window=args.genre_contrast_window,
                                 batch_size=args.genre_contrast_batch, pad_id=tokenizer.pad_token_id, seed=args.seed)
        trainer_class = with_genre_contrast(trainer_class, contrast, args.genre_contrast)
    trainer = trainer_class(
        model=model,
        args=training_arguments(args, len(train_dataset), eval_dataset is not None),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=make_collator(args, tokenizer),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    if args.resume is True:
        from transformers.trainer_utils import get_last_checkpoint

        resume = get_last_checkpoint(str(args.output_dir / "checkpoints"))
        if resume is None:
            log.info("no checkpoint to resume from in %s; starting fresh", args.output_dir / "checkpoints")
    else:
        resume = args.resume
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = trainer.evaluate() if eval_dataset is not None else {}

    if trainer.is_world_process_zero():
        save_checkpoint(args, trainer, data, result, metrics, started)
    return 0


def save_checkpoint(args, trainer, data: PreparedData, result, metrics: dict, started: float) -> None:
    model, tokenizer = trainer.model, data.tokenizer
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = generation_config_for(tokenizer, data.genres)
    trainer.save_model(str(out))  # safetensors + config + generation_config + tokenizer (processing_class)
    (out / "training_args.bin").unlink(missing_ok=True)  # a pickle; the settings are in the model card instead
    write_known_words(out, data.known_words)  # for the invented-word metric and the word guard
    eval_loss = metrics.get("eval_loss")
    samples = {} if args.skip_samples else sample_per_genre(model, tokenizer, data.genres, args.seed)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k not in {"train_file", "eval_file", "output_dir", "resume", "no_progress"}}
    settings["train_rows"] = len(trainer.train_dataset)
    tokens_seen = result.global_step * args.batch_size * args.gradient_accumulation_steps * args.block_size
    info = {
        "name": out.name,
        "genres": data.genres,
        "train_files": [str(p) for p in args.train_file],
        "eval_files": [str(p) for p in args.eval_file],
        "train_stories": len(data.train_stories),
        "train_counts": ", ".join(f"{g} {n}" for g, n in _counts(data.train_stories).items()),
        "eval_stories": len(data.eval_stories),
        "settings": settings,
        "steps": result.global_step,
        "tokens_seen": tokens_seen,
        "wall_minutes": (time.monotonic() - started) / 60,
        "parameters": model.num_parameters(),
        "machine": f"{platform.machine()} {platform.system()}, {trainer.args.device}, torch threads "
                   f"{__import__('torch').get_num_threads()}",
        "train_loss": result.training_loss,
        "eval_loss": eval_loss,
        "eval_perplexity": perplexity_from_loss(eval_loss),
        "samples": samples,
    }
    write_json(out / "training_info.json", info)
    write_model_card(out / "README.md", info)
    log.info("saved %s (%d steps, %.1f min); eval perplexity %s", out, result.global_step, info["wall_minutes"],
             format_metric(info["eval_perplexity"]))


def _counts(stories: Sequence[TokenizedStory]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for story in stories:
        genre = story.genre or "(neutral header)"
        counts[genre] = counts.get(genre, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


if __name__ == "__main__":
    sys.exit(main())
