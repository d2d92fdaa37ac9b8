"""Issue 6 speed suite: streaming overhead, time to first text, fast CPU paths with their perplexity, long drafts,
peak memory. One command; prints markdown tables and writes them to ``benchmarks/results/speed-<device>.md``.

    python benchmarks/bench_speed.py [--runs 5] [--new-tokens 100] [--device cpu|cuda] [--eval-file FILE]
    python benchmarks/bench_speed.py --side-by-side [options]   # vs llama.cpp: see bench_side_by_side.py

Models: a GPT-2-124M-shaped checkpoint with random weights (built by ``bench_generation.build_checkpoint``; speed
only: its perplexity means nothing) and the built-in model (speed and perplexity on held-out text,
``build/data/plots-dev/eval.txt`` by default — the built-in model's own eval split). Every speed figure is the
median of ``--runs`` timed runs after a warm-up, with min–max; the runs of the variants compared in one table are
interleaved so a change in machine load hits them alike. ``min_new_tokens`` equals ``max_new_tokens``, so EOS
cannot end a run early; sampling uses the engine's defaults and a fixed seed.

The work is split along its jobs: ``speed_timing`` (loading a model, timing a streamed passage), ``speed_sections``
(each section's measurements), ``speed_text`` (held-out text, perplexity), ``speed_memory`` (peak memory in a fresh
process), ``speed_report`` (the tables), ``speed_figures`` (figures, the machine). This file: options and the run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench_generation import build_checkpoint
from speed_figures import RESULTS_DIR, log
from speed_memory import peak_rss, peak_rss_child
from speed_report import Measured, write_report
from speed_sections import cpu_paths, drafts_section, gpu_paths, paths_section, sessions_section, streaming_section
from speed_text import DEFAULT_EVAL_FILE, held_out_text


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--side-by-side" in argv:  # storyterm vs llama.cpp (issue 17): its own script and options
        from bench_side_by_side import main as side_by_side

        return side_by_side([arg for arg in argv if arg != "--side-by-side"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=100)
    parser.add_argument("--passages", type=int, default=5, help="passages per co-writing session (figure 4)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint", type=Path, help="reuse a GPT-2-124M-shaped checkpoint from an earlier run")
    parser.add_argument("--builtin", type=Path, help="the built-in model directory (default: the installed one)")
    parser.add_argument("--eval-file", type=Path, default=DEFAULT_EVAL_FILE, help="held-out line file")
    parser.add_argument("--output", type=Path,
                        help="markdown file to write (default benchmarks/results/speed-DEVICE.md)")
    parser.add_argument("--rss-child", nargs=2, metavar=("CHECKPOINT", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.rss_child:
        peak_rss_child(*args.rss_child, args.device)
        return 0

    from storyterm.engine.devices import resolve_device
    from storyterm.engine.loading import BUILTIN_DIR

    import torch

    torch_threads = torch.get_num_threads()  # before any load: an int8 model sets fewer
    gpu = resolve_device(args.device).type == "cuda"
    builtin = args.builtin or BUILTIN_DIR
    eval_file = args.eval_file if args.eval_file and args.eval_file.is_file() else None
    text = held_out_text(eval_file)
    out: list[str] = []

    def emit(line: str = "") -> None:
        out.append(line)
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="storyterm-speed-") as scratch:
        measured = measure(args, Path(scratch), builtin, eval_file, text, gpu, torch_threads)
    write_report(measured, emit)
    output = args.output or RESULTS_DIR / f"speed-{'cuda' if gpu else 'cpu'}.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(out) + "\n", encoding="utf-8")
    log(f"written to {output}")
    return 0


def measure(args: argparse.Namespace, scratch: Path, builtin: Path, eval_file: Path | None, text: str, gpu: bool,
            torch_threads: int) -> Measured:
    """Every section in turn on the GPT-2-124M-shaped checkpoint (built in ``scratch`` unless --checkpoint) and the
    built-in model; ``torch_threads``: torch's thread count before any model was loaded."""
    from storyterm.engine.devices import dtype_name, resolve_device, resolve_dtype

    if not args.checkpoint:
        log("building the GPT-2-124M-shaped checkpoint…")
    big = args.checkpoint or build_checkpoint(scratch / "gpt2-124m-random")
    from transformers import AutoConfig

    big_params = sum(p.numel() for p in _meta_model(big).parameters())
    auto = dtype_name(resolve_dtype("auto", resolve_device(args.device), big_params))
    builtin_params = sum(p.numel() for p in _meta_model(builtin).parameters())
    builtin_auto = dtype_name(resolve_dtype("auto", resolve_device(args.device), builtin_params))
    window = AutoConfig.from_pretrained(big).n_positions
    builtin_window = AutoConfig.from_pretrained(builtin).n_positions

    log(f"1+2: streaming vs bare generate vs pipeline ({auto})…")
    streaming = streaming_section(big, auto, args.device, args.runs, args.new_tokens)
    paths = gpu_paths() if gpu else cpu_paths(torch_threads)
    small_variants = [replace(p) for p in paths if p.on_builtin]
    log("3: fast paths, GPT-2 124M shape…")
    big_paths = paths_section(big, paths, args.device, args.runs, args.new_tokens, None)
    log("3: fast paths, built-in model (with perplexity)…")
    small_paths = paths_section(builtin, small_variants,
                                args.device, args.runs, args.new_tokens, eval_file)
    log(f"4: long vs short drafts ({auto})…")
    drafts = drafts_section(big, auto, args.device, args.runs, args.new_tokens, text)
    drafts_dynamic = drafts_section(big, auto, args.device, args.runs, args.new_tokens, text,
                                    {"cache_implementation": None})
    drafts_small = drafts_section(builtin, builtin_auto, args.device, args.runs, args.new_tokens, text)
    log(f"4: co-writing sessions of {args.passages} passages, short vs long draft ({auto})…")
    sessions = {smart: sessions_section(big, auto, args.device, args.runs, args.new_tokens, text, args.passages,
                                        smart) for smart in (True, False)}
    sessions_small = sessions_section(builtin, builtin_auto, args.device, args.runs, args.new_tokens, text,
                                      args.passages, True)
    log("5: peak memory…")
    rss = {
        "Python + torch + transformers imported": peak_rss(None, "fp32", args.device),
        "GPT-2 124M shape, fp32": peak_rss(big, "fp32", args.device),
        f"GPT-2 124M shape, auto ({auto})": peak_rss(big, "auto", args.device),
        "built-in model, fp32": peak_rss(builtin, "fp32", args.device),
        f"built-in model, auto ({builtin_auto})": peak_rss(builtin, "auto", args.device),
    }
    return Measured(
        runs=args.runs, new_tokens=args.new_tokens, passages=args.passages, device=args.device, gpu=gpu,
        eval_file=eval_file, big_params=big_params, window=window, builtin_params=builtin_params,
        builtin_window=builtin_window, auto=auto, builtin_auto=builtin_auto, streaming=streaming, big_paths=big_paths,
        small_paths=small_paths, drafts=drafts, drafts_dynamic=drafts_dynamic, drafts_small=drafts_small,
        sessions=sessions, sessions_small=sessions_small, rss=rss)


def _meta_model(checkpoint: Path):
    """The model's modules without allocating weights (to count parameters)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(checkpoint))


if __name__ == "__main__":
    sys.exit(main())
