#!/usr/bin/env python
"""Which 8-bit (or 4-bit) matrix kernel decodes fastest on this CPU, at what perplexity (issue 17).

    python benchmarks/bench_int8_kernels.py [--variants dynamic,woq8-bf16,...] [--compile] [--runs 3]
        [--new-tokens 32] [--threads 1] [--eval-file FILE]

Each variant is the same GPT-2-124M-shaped model (random weights) with its Linear layers (GPT-2's Conv1D turned
into Linear) replaced: ``fp32``/``bf16`` as loaded; ``dynamic``: storyterm's int8 (``quantize_dynamic``, per-channel
int8 weights, activations quantized per call, fbgemm/x86 kernels); ``woq8-bf16``/``woq8-fp32``: weight-only int8
through torch's own ``torch._weight_int8pack_mm`` (per-channel scales, activations bf16 or fp32); ``woq4-bf16``:
weight-only int4, groups of 128, ``_weight_int4pack_mm_for_cpu`` (the output projection, whose 50 257 rows the
kernel refuses, stays int8); ``torchao-woq8``/``torchao-dyn8``: torchao's ``Int8WeightOnlyConfig`` /
``Int8DynamicActivationInt8WeightConfig`` when torchao is importable. ``--compile`` adds each variant with its decode
step compiled by ``torch.compile`` (inductor, ``fullgraph``; ``--compile-mode``) and reports the first call's time.

Speed: a loop of single-token forward calls over a static KV cache (no sampling, no streaming), median ms per token
of ``--runs`` interleaved runs, in a worker thread like the engine. Perplexity: the built-in model (same
replacement) on its held-out text, vs fp32. Prints markdown; writes benchmarks/results/int8-kernels-cpu.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCHMARKS), str(BENCHMARKS.parent / "src"), str(BENCHMARKS.parent)]

from bench_generation import in_worker_thread  # noqa: E402
from speed_figures import RESULTS_DIR, log, machine_lines  # noqa: E402
from speed_text import DEFAULT_EVAL_FILE  # noqa: E402

VARIANTS = ("fp32", "bf16", "dynamic", "woq8-bf16", "woq8-fp32", "woq4-bf16", "torchao-woq8", "torchao-dyn8")

import torch  # noqa: E402


class WeightOnlyInt8Linear(torch.nn.Module):
    """y = x @ (int8 W)ᵀ · scale + b, per-output-row scales, through ``torch._weight_int8pack_mm``."""

    def __init__(self, linear: torch.nn.Linear, activation: torch.dtype):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127
        self.register_buffer("weight", torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(activation))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().to(activation))
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).to(self.activation)
        y = torch._weight_int8pack_mm(flat, self.weight, self.scale)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], -1).to(x.dtype)


class WeightOnlyInt4Linear(torch.nn.Module):
    """Asymmetric int4 weights in groups of ``group`` inputs, ``_weight_int4pack_mm_for_cpu`` (bf16 activations)."""

    def __init__(self, linear: torch.nn.Linear, group: int = 128):
        super().__init__()
        weight = linear.weight.detach().float()
        out_features, in_features = weight.shape
        grouped = weight.reshape(out_features, in_features // group, group)
        low, high = grouped.amin(-1, keepdim=True), grouped.amax(-1, keepdim=True)
        scale = ((high - low) / 15).clamp(min=1e-8)
        q = torch.round((grouped - low) / scale).clamp(0, 15).to(torch.int32).reshape(out_features, in_features)
        # the kernel's convention: w = (q - 8) · scale + zero
        zero = low + 8 * scale
        scales_zeros = torch.cat([scale, zero], -1).reshape(out_features, -1, 2).transpose(0, 1).contiguous()
        self.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1))
        self.register_buffer("scales_zeros", scales_zeros.to(torch.bfloat16))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().to(torch.bfloat16))
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.packed, self.group, self.scales_zeros)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], -1).to(x.dtype)


def replace_linears(model: torch.nn.Module, make: Callable[[torch.nn.Linear], torch.nn.Module]) -> torch.nn.Module:
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(parent, name, make(child))
    return model


def build_variant(checkpoint: Path, variant: str) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    from storyterm.engine.fast_paths import conv1d_to_linear, quantize_int8

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.bfloat16 if variant == "bf16" else
                                                 torch.float32).eval()
    if variant in ("fp32", "bf16"):
        return model
    if variant == "dynamic":
        return quantize_int8(model)
    conv1d_to_linear(model)
    if variant.startswith("woq8-"):
        activation = torch.bfloat16 if variant.endswith("bf16") else torch.float32
        return replace_linears(model, lambda linear: WeightOnlyInt8Linear(linear, activation))
    if variant == "woq4-bf16":
        return replace_linears(model, lambda linear: (
            WeightOnlyInt4Linear(linear) if linear.out_features % 16 == 0 and linear.in_features % 128 == 0
            else WeightOnlyInt8Linear(linear, torch.bfloat16)))
    if variant.startswith("torchao-"):
        from torchao.quantization import (Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig,
                                          quantize_)

        quantize_(model, Int8WeightOnlyConfig() if variant == "torchao-woq8"
                  else Int8DynamicActivationInt8WeightConfig())
        return model
    raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


def decode_loop(model: torch.nn.Module, new_tokens: int, compile_mode: str | None):
    """A function timing ``new_tokens`` single-token steps (ms per token) after a 20-token prompt."""
    from transformers import StaticCache

    step = torch.compile(model.__call__, mode=compile_mode, fullgraph=True) if compile_mode else model.__call__
    prompt = torch.randint(0, min(1000, model.config.vocab_size), (1, 20))

    def run() -> float:
        with torch.inference_mode():
            cache = StaticCache(config=model.config, max_cache_len=prompt.shape[1] + new_tokens)
            out = model(input_ids=prompt, cache=cache, use_cache=True)
            token = out.logits[:, -1:].argmax(-1)
            started = time.perf_counter()
            for index in range(new_tokens):
                position = torch.tensor([prompt.shape[1] + index])
                out = step(input_ids=token, cache=cache, use_cache=True, cache_position=position)
                token = out.logits[:, -1:].argmax(-1)
            return (time.perf_counter() - started) * 1000 / new_tokens

    return run


def perplexity(builtin: Path, variant: str, eval_file: Path) -> float | None:
    from speed_text import perplexity as held_out_perplexity

    from storyterm.engine.loading import ModelSpec, load_model

    loaded = load_model(ModelSpec(str(builtin), device="cpu", dtype="fp32"))
    loaded.model = build_variant(builtin, variant)
    return held_out_perplexity(loaded, eval_file)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--compile", action="store_true", help="also time each variant with a compiled decode step")
    parser.add_argument("--compile-mode", default="default")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", type=Path, help="a GPT-2-124M-shaped checkpoint from an earlier run")
    parser.add_argument("--builtin", type=Path, help="the built-in model directory (default: the installed one)")
    parser.add_argument("--eval-file", type=Path, default=DEFAULT_EVAL_FILE)
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "int8-kernels-cpu.md")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bench_generation import build_checkpoint

    from storyterm.engine.loading import BUILTIN_DIR

    torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or build_checkpoint(Path(tempfile.mkdtemp(prefix="storyterm-kernels-")) / "gpt2")
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    loops, first_call, failed = {}, {}, {}
    for variant in args.variants.split(","):
        for mode in (None, args.compile_mode) if args.compile else (None,):
            label = variant + (f" + compile ({mode})" if mode else "")
            try:
                run = decode_loop(build_variant(checkpoint, variant), args.new_tokens, mode)
                started = time.perf_counter()
                in_worker_thread(run)
                first_call[label] = time.perf_counter() - started
                loops[label] = run
            except Exception as error:  # noqa: BLE001 - a variant this torch cannot run is a row saying so
                failed[label] = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
            log(f"  {label}: {'failed: ' + failed[label] if label in failed else f'ready ({first_call[label]:.1f} s)'}")
    times: dict[str, list[float]] = {label: [] for label in loops}
    for run_index in range(args.runs):
        for label, run in loops.items():
            times[label].append(in_worker_thread(run))
        log(f"  run {run_index + 1}/{args.runs}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in times.items()))
    builtin = args.builtin or BUILTIN_DIR
    eval_file = args.eval_file if args.eval_file and args.eval_file.is_file() else None
    ppl = {}
    if eval_file is not None:
        for variant in dict.fromkeys(label.split(" ")[0] for label in [*loops, *failed]):
            try:
                ppl[variant] = perplexity(builtin, variant, eval_file)
            except Exception as error:  # noqa: BLE001
                log(f"  perplexity {variant}: failed: {error}")
    reference = ppl.get("fp32")
    shape = ("GPT-2 124M shape" if not args.checkpoint
             else f"{args.checkpoint.name} ({_parameters(checkpoint)} parameters)")
    fp32_ms = statistics.median(times["fp32"]) if times.get("fp32") else None
    lines = ["## Decode kernels: 8-bit and 4-bit weights on this CPU (issue 17)", "",
             f"`python benchmarks/bench_int8_kernels.py --runs {args.runs} --new-tokens {args.new_tokens} --threads "
             f"{args.threads}{' --compile' if args.compile else ''}` — {shape}, random weights: single-token "
             "forward calls over a static KV cache (no sampling), median of interleaved runs (min–max); perplexity: "
             f"built-in model on {eval_file or 'no held-out file'}.", ""]
    lines += machine_lines("cpu") + [f"- load average before / after: {load_before} / "
                                     f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}", ""]
    lines += ["| variant | ms/token | tok/s | ÷ fp32 speed | first call | built-in perplexity | Δ vs fp32 |",
              "|---|---|---|---|---|---|---|"]
    for label in [*loops, *failed]:
        variant = label.split(" ")[0]
        value = ppl.get(variant)
        delta = f"{(value / reference - 1) * 100:+.2f} %" if value and reference else "—"
        ppl_cell = f"{value:.2f}" if value else "—"
        if label in failed:
            lines.append(f"| {label} | failed: {failed[label]} | | | | {ppl_cell} | {delta} |")
            continue
        ms = statistics.median(times[label])
        speed = f"{fp32_ms / ms:.2f}×" if fp32_ms else "—"
        lines.append(f"| {label} | {ms:.1f} ({min(times[label]):.1f}–{max(times[label]):.1f}) | {1000 / ms:.1f} | "
                     f"{speed} | {first_call[label]:.1f} s | {ppl_cell} | {delta} |")
    print("\n".join(lines))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log(f"written to {args.output}")
    return 0


def _parameters(checkpoint: Path) -> str:
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(checkpoint))
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.0f} M"


if __name__ == "__main__":
    sys.exit(main())
