"""The model flags (``--model --device --dtype --allow-pickle``), loading the model they name with a progress line,
and config.toml's part in running it (genres in words, instruct mode)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from storyterm.cli.errors import PROG

if TYPE_CHECKING:
    from storyterm.engine.loading import LoadedModel, ModelSpec


def model_options(debug_default: Any = False) -> argparse.ArgumentParser:
    """A parent parser with the model flags and ``--debug``, shared by the editor form and the model subcommands."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("model")
    group.add_argument("-m", "--model", default="builtin", metavar="M",
                       help="'builtin' (default), a local checkpoint directory, a .gguf file (run by llama.cpp: "
                       "pip install 'storyterm[gguf]'), or a Hugging Face hub id (from the cache)")
    group.add_argument("--device", default="auto", metavar="D", help="auto (default), cpu, cuda, cuda:N or mps")
    group.add_argument("--dtype", default="auto", metavar="T",
                       help="auto (default: bf16 on a GPU; on a CPU int8 weights for larger models, else fp32), "
                       "fp32, bf16, fp16 or int8 (CPU only)")
    group.add_argument("--allow-pickle", action="store_true",
                       help="allow checkpoints with only pickle weights (they can run code: trusted files only)")
    parent.add_argument("--debug", action="store_true", default=debug_default, help="show tracebacks on errors")
    return parent


def model_spec(args: argparse.Namespace) -> ModelSpec:
    from storyterm.engine.loading import ModelSpec

    return ModelSpec(source=args.model, device=args.device, dtype=args.dtype, allow_pickle=args.allow_pickle)


def load_named_model(args: argparse.Namespace) -> LoadedModel:
    """Load the model the flags name; on a terminal (and not for --json) its progress overwrites one stderr line."""
    from storyterm.engine.loading import load_model

    progress: Callable[[str], None] | None = None
    if sys.stderr.isatty() and not getattr(args, "json", False):
        def progress(message: str) -> None:
            print(f"\r\033[K{message}", end="", file=sys.stderr, flush=True)

    try:
        loaded = load_model(model_spec(args), on_progress=progress)
    finally:
        if progress is not None:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
    return loaded


def user_config() -> Any:
    """config.toml (for the genres in words and instruct mode); its warnings are notes on stderr."""
    from storyterm.config import load_config

    config, warnings = load_config()
    for warning in warnings:
        print(f"{PROG}: note: {warning}", file=sys.stderr)
    return config
