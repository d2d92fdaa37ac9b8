"""bench_speed.py's report: markdown tables of what it measured, line by line through ``emit`` (which prints each
line and keeps it for the results file)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speed_figures import ROOT, Figure, machine_lines, ratio_figure
from speed_sections import LONG_DRAFT_TOKENS, SHORT_DRAFT_TOKENS, PathResult

Emit = Callable[..., None]


@dataclass
class Measured:
    """Everything one bench_speed.py run measured, with its options and the models' facts."""

    runs: int
    new_tokens: int
    passages: int
    device: str
    gpu: bool
    eval_file: Path | None
    big_params: int  # the GPT-2-124M-shaped checkpoint
    window: int
    builtin_params: int
    builtin_window: int
    auto: str  # what `dtype auto` picks for the 124M shape
    builtin_auto: str
    streaming: dict[str, Figure]
    big_paths: list[PathResult]
    small_paths: list[PathResult]
    drafts: dict
    drafts_dynamic: dict
    drafts_small: dict
    sessions: dict[bool, dict]  # by smart context on / off
    sessions_small: dict
    rss: dict[str, dict[str, Any]]


def write_report(m: Measured, emit: Emit) -> None:
    summary(m, emit)
    paths_table(m, emit)
    streaming_table(m, emit)
    drafts_table(m, emit)
    sessions_table(m, emit)
    memory_table(m, emit)


def fp32_big_of(m: Measured) -> PathResult | None:
    return next((r for r in m.big_paths if r.path.dtype == "fp32" and r.speed.values), None)


def fp32_small_of(m: Measured) -> PathResult | None:
    return next((r for r in m.small_paths if r.path.dtype == "fp32"), None)


def ppl_delta(result: PathResult | None, fp32_small: PathResult | None) -> str:
    if result is None or result.perplexity is None or fp32_small is None or fp32_small.perplexity is None:
        return "—"
    return f"{(result.perplexity / fp32_small.perplexity - 1) * 100:+.2f} %"


def summary(m: Measured, emit: Emit) -> None:
    """The title, the machine and models, and the table of figures against their targets."""
    gpu, auto, builtin_auto, eval_file = m.gpu, m.auto, m.builtin_auto, m.eval_file
    streaming, drafts, sessions, rss = m.streaming, m.drafts, m.sessions, m.rss
    fp32_big, fp32_small = fp32_big_of(m), fp32_small_of(m)
    working = [r for r in m.big_paths if r.speed.values and r is not fp32_big]
    fastest = max(working, key=lambda r: r.speed.median, default=None)
    same_dtype_small = {r.path.dtype: r for r in m.small_paths if r.path.include_lm_head}
    emit(f"## storyterm generation speed ({'GPU' if gpu else 'CPU'})")
    emit()
    emit(f"`python benchmarks/bench_speed.py --runs {m.runs} --new-tokens {m.new_tokens} --device {m.device}`"
         f" — median of {m.runs} runs (min–max), {m.new_tokens} new tokens per run.")
    emit()
    for line in machine_lines(m.device):
        emit(line)
    held_out = eval_file.relative_to(ROOT) if eval_file and eval_file.is_relative_to(ROOT) else eval_file
    emit(f"- models: GPT-2 124M shape ({m.big_params / 1e6:.1f} M parameters, random weights, window {m.window}); "
         f"built-in ({m.builtin_params / 1e6:.1f} M parameters, window {m.builtin_window}); held-out text: {held_out}")
    emit(f"- `dtype auto` here: {auto} for the 124M shape, {builtin_auto} for the built-in model")
    emit()
    emit("| figure (GPT-2 124M shape unless said) | measured | target | |")
    emit("|---|---|---|---|")
    ratio = streaming["ratio"]
    emit(f"| 1. engine streaming ÷ bare `generate` tokens/s ({auto}) | {ratio.show(3)} | ≥ 0.97 | "
         f"{check(ratio.median, 0.97, True)} |")
    first = streaming["first_ratio"]
    emit(f"| 2. first text on screen ÷ seed `pipeline` time-to-story, {m.new_tokens} tokens ({auto}) | "
         f"{first.show(4)} | ≤ 0.05 | {check(first.median, 0.05, False)} |")
    if fastest and fp32_big:
        speedup = ratio_figure(fastest.speed, fp32_big.speed)
        small_same = same_dtype_small.get(fastest.path.dtype)
        emit(f"| 3. fastest {'GPU' if gpu else 'CPU'} path ({fastest.path.label}) ÷ fp32 tokens/s | "
             f"{speedup.show(2, '×')} | ≥ 1.8× | {check(speedup.median, 1.8, True)} |")
        emit(f"| 3. its perplexity vs fp32, built-in model on held-out text | {ppl_delta(small_same, fp32_small)} | "
             f"≤ +3 % | {_ppl_check(small_same, fp32_small)} |")
    session_ratio = sessions[True]["ratio"]
    emit(f"| 4. {LONG_DRAFT_TOKENS}-token draft ÷ {SHORT_DRAFT_TOKENS}-token draft tokens/s, co-writing session of "
         f"{m.passages} passages, end to end ({auto}) | {session_ratio.show(3)} | ≥ 0.9 | "
         f"{check(session_ratio.median, 0.9, True)} |")
    emit(f"| 4. the same, one passage on a draft just opened (whole window read) | {drafts['ratio'].show(3)} | | |")
    emit(f"| 4. one passage, decoding only (after the first token) | {drafts['decode_ratio'].show(3)} | | |")
    builtin_key = f"built-in model, auto ({builtin_auto})"
    for label, key in (("5. peak RSS, GPT-2 124M shape, fp32", "GPT-2 124M shape, fp32"),
                       (f"5. peak RSS, {builtin_key}", builtin_key)):
        value = rss[key].get("peak_rss_mb")
        target = "≤ 1.2 GB" if "124M" in label else "—"
        mark = check(value, 1200, False) if value is not None and "124M" in label else ""
        emit(f"| {label} | {_mb(rss[key])} | {target} | {mark} |")
    emit()


def paths_table(m: Measured, emit: Emit) -> None:
    fp32_big, fp32_small = fp32_big_of(m), fp32_small_of(m)
    emit("### Paths (engine streaming tokens/s)")
    emit()
    emit("| path | GPT-2 124M shape tok/s | ÷ fp32 | built-in tok/s | built-in perplexity (held-out) | Δ vs fp32 |")
    emit("|---|---|---|---|---|---|")
    small_by_label = {r.path.label: r for r in m.small_paths}
    for result in m.big_paths:
        small = small_by_label.get(result.path.label)
        speedup = (ratio_figure(result.speed, fp32_big.speed).show(2, "×")
                   if fp32_big and result.speed.values else "—")
        big_cell = result.speed.show() if not result.error else f"failed: {result.error}"
        small_cell = (small.speed.show() if small and not small.error else
                      (f"failed: {small.error}" if small else "not run"))
        ppl = f"{small.perplexity:.2f}" if small and small.perplexity is not None else "—"
        emit(f"| {result.path.label} | {big_cell} | {speedup} | {small_cell} | {ppl} | "
             f"{ppl_delta(small, fp32_small)} |")
    emit()


def streaming_table(m: Measured, emit: Emit) -> None:
    auto, streaming = m.auto, m.streaming
    emit("### Streaming, first text, the seed's pipeline")
    emit()
    emit(f"| {auto}, GPT-2 124M shape | bare `generate` tok/s | engine streaming tok/s | engine: first text on screen "
         f"| seed `pipeline`: time to story |")
    emit("|---|---|---|---|---|")
    emit(f"| median (min–max) | {streaming['bare'].show()} | {streaming['stream'].show()} | "
         f"{streaming['first_text'].show(3, ' s')} | {streaming['pipeline_s'].show(2, ' s')} |")
    emit()


def drafts_table(m: Measured, emit: Emit) -> None:
    auto, builtin_auto = m.auto, m.builtin_auto
    emit("### Long drafts")
    emit()
    emit("| model | draft | prompt tokens | tok/s end to end | tok/s decoding | first text | `prepare()` "
         "| tokenizing the whole draft |")
    emit("|---|---|---|---|---|---|---|---|")
    for name, figures, dtype in (("GPT-2 124M shape", m.drafts, auto),
                                 ("GPT-2 124M shape", m.drafts_dynamic, f"{auto}, dynamic KV cache always"),
                                 ("built-in", m.drafts_small, builtin_auto)):
        for which, tokens in (("short", SHORT_DRAFT_TOKENS), ("long", LONG_DRAFT_TOKENS)):
            prompt = figures["prompt_tokens"] if which == "long" else figures["short_prompt_tokens"]
            prepare = figures["prepare_ms"].show(1, " ms") if which == "long" else ""
            encode = figures["encode_all_ms"].show(1, " ms") if which == "long" else ""
            emit(f"| {name} ({dtype}) | {tokens} tokens | {prompt} | {figures[which].show()} | "
                 f"{figures[which + '_decode'].show()} | {figures[which + '_first'].show(3, ' s')} | {prepare} | "
                 f"{encode} |")
    emit()


def sessions_table(m: Measured, emit: Emit) -> None:
    auto, builtin_auto = m.auto, m.builtin_auto
    emit(f"### Co-writing sessions ({m.passages} passages, each appended to the draft before the next)")
    emit()
    emit("| model | smart context | short draft tok/s | long draft tok/s | long ÷ short | first text, long "
         "(mean per passage) | long: prompt read from the cache (passages 2+) |")
    emit("|---|---|---|---|---|---|---|")
    for name, figures, dtype, smart in (("GPT-2 124M shape", m.sessions[True], auto, "on"),
                                        ("GPT-2 124M shape", m.sessions[False], auto, "off"),
                                        ("built-in", m.sessions_small, builtin_auto, "on")):
        emit(f"| {name} ({dtype}) | {smart} | {figures['short'].show()} | {figures['long'].show()} | "
             f"{figures['ratio'].show(3)} | {figures['long_first'].show(3, ' s')} | "
             f"{figures['long_cached'].median * 100:.0f} % |")
    emit()


def memory_table(m: Measured, emit: Emit) -> None:
    gpu = m.gpu
    emit("### Peak memory (fresh process: load, generate 20 tokens)")
    emit()
    emit("| process | peak RSS |" + (" GPU peak allocated |" if gpu else ""))
    emit("|---|---|" + ("---|" if gpu else ""))
    for label, report in m.rss.items():
        gpu_cell = f" {report.get('gpu_peak_mb', 0):.0f} MB |" if gpu else ""
        emit(f"| {label} | {_mb(report)} |{gpu_cell}")


def check(value: float, target: float, at_least: bool) -> str:
    ok = value >= target if at_least else value <= target
    return "✓" if ok else "✗"


def _mb(report: dict[str, Any]) -> str:
    if "error" in report:
        return f"failed: {report['error']}"
    return f"{report['peak_rss_mb']:.0f} MB"


def _ppl_check(result: PathResult | None, reference: PathResult | None) -> str:
    if not result or not reference or result.perplexity is None or reference.perplexity is None:
        return ""
    return check(result.perplexity / reference.perplexity, 1.03, False)
