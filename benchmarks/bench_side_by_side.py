#!/usr/bin/env python
"""storyterm vs llama.cpp on the same random weights, same machine, one run (issue 17). Not run in CI.

    python benchmarks/bench_side_by_side.py [--models gpt2-124m,llama-0.5b] [--runs 3] [--new-tokens 100]
        [--threads 1,2] [--engines torch,gguf] [--llama-bench PATH] [--scratch DIR]
    python benchmarks/bench_speed.py --side-by-side [the same options]

For each model shape (GPT-2 124M; a Llama-architecture model of ~0.5 B parameters with Qwen2.5-0.5B's shape), a
checkpoint with random weights is built, converted to GGUF (f32, f16, q8_0) with llama.cpp's own
``convert_hf_to_gguf.py``, and decoded by both engines: storyterm's streaming engine (fp32, bf16, int8; the
default sampling settings) and ``llama-bench -p 0 -n N`` (f32, f16, q8_0), on each thread count. Runs of the two
engines are interleaved so a change in machine load hits both alike; the table gives medians (min–max) and the
ratio storyterm ÷ llama.cpp per run. storyterm's figure is its decoding speed (tokens after the first ÷ the time
after the first token), as llama-bench's ``tg`` test excludes the prompt.

``--engines gguf`` compares storyterm's GGUF engine instead (``--engines torch,gguf``: both): the q8_0 file read by
``LlamaCppEngine`` (llama.cpp's kernels behind storyterm's decode loop, default sampling, no sentence grace) against
``llama-bench`` on the same file, interleaved per run and thread count (``llama_set_n_threads`` between runs).
``--gguf-type Q4_K_M`` (any ``llama-quantize`` type; default q8_0) gives the GGUF engine a file of that type, quantized
from the f32 conversion by ``llama-quantize`` beside ``llama-bench``, and times ``llama-bench`` on that file AND on
q8_0: the ratio to the same file is the engine's overhead, the ratio to q8_0 the smaller format's gain on top.
Every llama-bench figure comes twice: as llama-bench maps the file by default, and with ``-lm none`` (the weights
read into memory, as storyterm's GGUF engine does when they fit: ``gguf_loading.reads_into_memory``).

``llama-bench`` is taken from ``--llama-bench``, else ``$LLAMA_BENCH``, else the team's shared build, else PATH;
``convert_hf_to_gguf.py`` and ``gguf-py`` from the llama.cpp source tree it was built in (``$LLAMA_CPP_DIR``
overrides). A missing binary ends the run with a message saying how to build one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCHMARKS), str(BENCHMARKS.parent / "src")]

from speed_figures import Figure, RESULTS_DIR, log, machine_lines, ratio_figure  # noqa: E402

SHARED_LLAMA_CPP = Path("/work/build/src/llama_cpp_python-0.3.36/vendor/llama.cpp")
# storyterm dtype → the GGUF type of the same width
PAIRS = (("fp32", "f32"), ("bf16", "f16"), ("int8", "q8_0"))
MODELS = ("gpt2-124m", "llama-0.5b")
ENGINES = ("torch", "gguf")  # storyterm's transformers engine (fp32, bf16, int8) and its GGUF engine (q8_0)
PROMPT = "After the bank job goes wrong, the crew hides in an old warehouse by the docks and waits for"
HOW_TO_BUILD = (
    "llama-bench not found: pass --llama-bench PATH or set LLAMA_BENCH. To build it: download llama.cpp "
    "(or `pip download llama-cpp-python --no-binary :all:` and unpack it: the source is in vendor/llama.cpp), then "
    "`cmake -B build && cmake --build build -j --target llama-bench` there."
)


# ---------------------------------------------------------------------------------------------------------------------
# llama.cpp


def find_llama_bench(option: str | None) -> Path | None:
    """The binary the option or $LLAMA_BENCH names (only that one, when given), else the shared build, else PATH."""
    named = option or os.environ.get("LLAMA_BENCH")
    candidates = [named] if named else [SHARED_LLAMA_CPP / "build" / "bin" / "llama-bench", shutil.which("llama-bench")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def find_converter(llama_bench: Path) -> Path | None:
    """convert_hf_to_gguf.py of the source tree ``llama_bench`` was built in (build/bin/llama-bench)."""
    roots = [os.environ.get("LLAMA_CPP_DIR"), llama_bench.resolve().parents[2], SHARED_LLAMA_CPP]
    for root in roots:
        if root and (Path(root) / "convert_hf_to_gguf.py").is_file():
            return Path(root) / "convert_hf_to_gguf.py"
    return None


# The converter refuses BPE tokenizers whose pre-tokenizer it does not know by hash (our random checkpoints' are
# built in-process); for a speed test the GPT-2 byte-level rules are right, so unknown ones are written as those.
# A Llama checkpoint without tokenizer.model must not need the sentencepiece package.
_CONVERT = """
import runpy, sys
root = sys.argv.pop(1)
sys.path[:0] = [root, root + "/gguf-py"]
import conversion.base as base
original = base.TextModel.get_vocab_base_pre
def lenient(self, tokenizer):
    try:
        return original(self, tokenizer)
    except NotImplementedError:
        return "gpt-2"
base.TextModel.get_vocab_base_pre = lenient
def no_sentencepiece(self, *args, **kwargs):  # Llama tries it first; without the package it fails, not falls back
    raise FileNotFoundError("no tokenizer.model")
import os
if not os.path.isfile(os.path.join(sys.argv[1], "tokenizer.model")):
    base.TextModel._set_vocab_sentencepiece = no_sentencepiece
sys.argv[0] = root + "/convert_hf_to_gguf.py"
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def convertible_copy(checkpoint: Path, into: Path) -> Path:
    """``checkpoint`` as the converter wants it (weights linked, not copied): transformers 5 no longer writes GPT-2's
    ``n_ctx``, and llama.cpp refuses a BPE vocabulary without merges (the random checkpoints have none)."""
    into.mkdir(parents=True, exist_ok=True)
    for file in checkpoint.iterdir():
        if file.name not in ("config.json", "tokenizer.json") and not (into / file.name).exists():
            (into / file.name).symlink_to(file.resolve())
    config = json.loads((checkpoint / "config.json").read_text())
    if config.get("model_type") == "gpt2":
        config.setdefault("n_ctx", config.get("n_positions", 1024))
    (into / "config.json").write_text(json.dumps(config))
    tokenizer = json.loads((checkpoint / "tokenizer.json").read_text())
    model = tokenizer["model"]
    if not model.get("merges"):
        pair = next(piece for piece in model["vocab"] if len(piece) == 2)
        model["merges"] = [[pair[0], pair[1]]]
    (into / "tokenizer.json").write_text(json.dumps(tokenizer))
    return into


def convert(converter: Path, checkpoint: Path, outtype: str, out: Path) -> Path:
    if out.is_file():
        return out
    command = [sys.executable, "-c", _CONVERT, str(converter.parent), str(checkpoint), "--outtype", outtype,
               "--outfile", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not out.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"converting {checkpoint.name} to {outtype} failed: {' / '.join(tail)}")
    return out


def quantize(binary: Path, source: Path, kind: str, out: Path) -> Path:
    """``source`` (an f32 GGUF) quantized to ``kind`` by the ``llama-quantize`` built beside ``binary``."""
    if out.is_file():
        return out
    done = subprocess.run([str(binary.parent / "llama-quantize"), str(source), str(out), kind.upper()],
                          capture_output=True, text=True)
    if done.returncode != 0 or not out.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"llama-quantize {source.name} to {kind} failed: {' / '.join(tail)}")
    return out


def llama_bench_tokens_per_s(binary: Path, gguf: Path, threads: int, new_tokens: int,
                             load_mode: str = "") -> float:
    """``load_mode``: llama-bench's ``-lm`` (none: the weights read into memory, as storyterm does; default: mmap)."""
    command = [str(binary), "-m", str(gguf), "-p", "0", "-n", str(new_tokens), "-t", str(threads), "-r", "1",
               "-o", "json", *(("-lm", load_mode) if load_mode else ())]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"llama-bench failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return float(json.loads(done.stdout)[0]["avg_ts"])


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints


def byte_level_tokenizer(vocab_size: int, max_length: int):
    """A byte-level BPE tokenizer of exactly ``vocab_size`` ids (bytes, then two- and three-byte pieces) with the
    storyterm genre tokens: random models can sample and decode every id."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from storyterm.engine.prompt import BOS_TOKEN, CLASSIC_GENRES, EOS_TOKEN, PAD_TOKEN, genre_token

    specials = [BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, *(genre_token(g) for g in CLASSIC_GENRES)]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {char: index for index, char in enumerate(alphabet)}
    wanted = vocab_size - len(specials)
    pieces = (a + b for a in alphabet for b in alphabet)
    triples = (a + b + c for a in alphabet[:64] for b in alphabet for c in alphabet)
    for piece in (*pieces, *triples):
        if len(vocab) >= wanted:
            break
        vocab.setdefault(piece, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN,
                                        pad_token=PAD_TOKEN, extra_special_tokens=specials[3:],
                                        model_max_length=max_length)
    assert len(tokenizer) == vocab_size, len(tokenizer)
    return tokenizer


def build_llama_checkpoint(path: Path) -> Path:
    """Qwen2.5-0.5B's shape as a plain Llama (24 layers, 896 wide, 14 heads with 2 key-value heads, MLP 4 864,
    151 936 ids, tied embeddings: 494 M parameters), random weights, stored in bf16 (1 GB; fp32 is the exact
    upcast, and every engine reads the same values)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if (path / "config.json").is_file():
        return path
    tokenizer = byte_level_tokenizer(151_936, 2048)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, rms_norm_eps=1e-6, rope_theta=1_000_000.0,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    with torch.device("cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_model(name: str, scratch: Path) -> Path:
    from bench_generation import build_checkpoint

    path = scratch / name
    if name == "gpt2-124m":
        return path if (path / "config.json").is_file() else build_checkpoint(path)
    if name == "llama-0.5b":
        return build_llama_checkpoint(path)
    raise SystemExit(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


# ---------------------------------------------------------------------------------------------------------------------
# The run


def gguf_engine(path: Path, new_tokens: int):
    """storyterm's GGUF engine (llama.cpp through ``LlamaCppEngine``) on ``path`` and the request it decodes."""
    from storyterm.engine.generation import GenerationRequest
    from storyterm.engine.loading import ModelSpec, load_model, open_engine
    from storyterm.engine.settings import DEFAULT_SETTINGS

    loaded = load_model(ModelSpec(str(path)))
    engine = open_engine(loaded)
    # No sentence grace (llama-bench decodes exactly N tokens); the default sampling settings otherwise.
    settings = DEFAULT_SETTINGS.with_changes(max_new_tokens=new_tokens, seed=1, trim_sentences=False)
    genre = loaded.genres[0] if loaded.genres else "thriller"
    request = GenerationRequest(genre, PROMPT, settings=settings)
    engine.generate(request)  # warm-up
    return engine, request


def gguf_engine_tokens_per_s(engine, request, threads: int, run: int) -> float:
    """Decoding tok/s of one streamed passage on ``threads`` llama.cpp threads (prompt read afresh each time)."""
    import llama_cpp

    from speed_timing import timed_stream

    llama = engine.loaded.model.llama
    llama_cpp.llama_set_n_threads(llama.ctx, threads, max(threads, os.cpu_count() or threads))
    seeded = request.__class__(request.genre, request.story, settings=request.settings.with_changes(seed=run + 1))
    return timed_stream(engine, seeded).decode_tokens_per_s


def side_by_side(name: str, scratch: Path, binary: Path, converter: Path, threads: Sequence[int], runs: int,
                 new_tokens: int, engines_wanted: Sequence[str] = ENGINES, gguf_type: str = "q8_0") -> dict:
    """{(dtype, threads): (storyterm Figure, llama.cpp Figure)} plus facts about the model; with the GGUF engine,
    {threads: (storyterm GGUF engine Figure, llama.cpp q8_0 Figure[, llama.cpp Figure on gguf_type])} under
    "gguf"."""
    import gc

    from speed_timing import load, make_engine, request_for, timed_stream, warm_up, Variant

    log(f"{name}: building the checkpoint…")
    checkpoint = build_model(name, scratch)
    source = convertible_copy(checkpoint, scratch / f"{name}-gguf-source")
    pairs = PAIRS if "torch" in engines_wanted else ()
    ggufs = {}
    gguf_type = gguf_type.lower()
    quantized = "gguf" in engines_wanted and gguf_type != "q8_0"
    wanted = [*(o for _d, o in pairs), *(("q8_0",) if "gguf" in engines_wanted else ()),
              *(("f32",) if quantized else ())]
    for outtype in dict.fromkeys(wanted):
        log(f"{name}: converting to GGUF {outtype}…")
        ggufs[outtype] = convert(converter, source, outtype, scratch / f"{name}-{outtype}.gguf")
    if quantized:
        log(f"{name}: llama-quantize to {gguf_type}…")
        ggufs[gguf_type] = quantize(binary, ggufs["f32"], gguf_type, scratch / f"{name}-{gguf_type}.gguf")
    # llama-bench on q8_0 (and on --gguf-type), mapping the file (its default) and reading it ("-lm none")
    benches = [(kind, mode) for kind in dict.fromkeys(["q8_0", gguf_type]) for mode in ("", "none")]
    gguf_figures = {t: {"engine": Figure(), **{bench: Figure() for bench in benches}} for t in threads} \
        if "gguf" in engines_wanted else {}
    in_memory = None
    if gguf_figures:
        log(f"{name}: loading {gguf_type} in storyterm's GGUF engine…")
        gguf_run = gguf_engine(ggufs[gguf_type], new_tokens)
        log(f"  weights read into memory: {gguf_run[0].loaded.model.in_memory}")
        for run in range(runs):
            for t in threads:
                figures_now = gguf_figures[t]
                figures_now["engine"].add(gguf_engine_tokens_per_s(*gguf_run, t, run))
                line = (f"  {name} run {run + 1}/{runs}: {t}t storyterm {gguf_type} "
                        f"{figures_now['engine'].values[-1]:.1f}")
                for kind, mode in benches:
                    figure = figures_now[(kind, mode)]
                    figure.add(llama_bench_tokens_per_s(binary, ggufs[kind], t, new_tokens, mode))
                    line += f", llama-bench {kind}{' -lm ' + mode if mode else ''} {figure.values[-1]:.1f}"
                log(f"{line} tok/s (load {os.getloadavg()[0]:.1f})")
        parameters = gguf_run[0].loaded.model.parameters
        in_memory = gguf_run[0].loaded.model.in_memory
        del gguf_run
        gc.collect()
    if not pairs:
        sizes = {outtype: path.stat().st_size for outtype, path in ggufs.items()}
        return {"figures": {}, "gguf": gguf_figures, "parameters": parameters, "sizes": sizes,
                "in_memory": in_memory}
    engines = {}
    for dtype, _outtype in PAIRS:
        log(f"{name}: loading storyterm {dtype}…")
        loaded = load(checkpoint, Variant(dtype, dtype), "cpu")
        engine = make_engine(loaded, new_tokens)
        request = request_for(PROMPT, new_tokens)
        warm_up(engine, request)
        engines[dtype] = (engine, request)
    parameters = sum(p.numel() for p in engines["fp32"][0].loaded.model.parameters())
    figures = {(dtype, t): (Figure(), Figure()) for dtype, _ in PAIRS for t in threads}
    for run in range(runs):
        for dtype, outtype in PAIRS:
            for t in threads:
                engine, request = engines[dtype]
                ours, theirs = figures[(dtype, t)]
                ours.add(timed_stream(engine, request, t).decode_tokens_per_s)
                theirs.add(llama_bench_tokens_per_s(binary, ggufs[outtype], t, new_tokens))
                log(f"  {name} run {run + 1}/{runs}: {dtype} {t}t storyterm {ours.values[-1]:.1f} tok/s, "
                    f"llama.cpp {outtype} {theirs.values[-1]:.1f} tok/s")
    engines.clear()
    gc.collect()
    sizes = {outtype: path.stat().st_size for outtype, path in ggufs.items()}
    return {"figures": figures, "gguf": gguf_figures, "parameters": parameters, "sizes": sizes,
            "in_memory": in_memory}


def report(results: dict[str, dict], threads: Sequence[int], runs: int, new_tokens: int, load_before: str,
           load_after: str, binary: Path, engines_wanted: Sequence[str] = ENGINES, gguf_type: str = "q8_0"
           ) -> list[str]:
    lines = ["## storyterm vs llama.cpp, same weights, same machine (issue 17)", "",
             f"`python benchmarks/bench_side_by_side.py --runs {runs} --new-tokens {new_tokens} --threads "
             f"{','.join(map(str, threads))} --engines {','.join(engines_wanted)}"
             f"{'' if gguf_type.lower() == 'q8_0' else ' --gguf-type ' + gguf_type}` — "
             f"median of {runs} interleaved runs (min–max), {new_tokens} new tokens; storyterm: engine streaming, "
             f"default sampling (the GGUF engine: "
             "without the sentence grace), decoding tok/s (after the first token, so the prompt is not counted); "
             f"llama.cpp: `llama-bench -p 0 -n {new_tokens}` ({binary}), its tg figure (no prompt, no sampling).", ""]
    lines += machine_lines("cpu")
    lines += [f"- load average before / after: {load_before} / {load_after}", ""]
    for name, result in results.items():
        figures = result["figures"]
        sizes = ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in result["sizes"].items())
        lines += [f"### {name} ({result['parameters'] / 1e6:.0f} M parameters, random weights; GGUF {sizes})", ""]
        if result["gguf"]:
            kind = gguf_type.lower()
            lines += [f"GGUF engine on {kind} (weights read into memory: {result['in_memory']}); llama-bench as it "
                      "maps the file by default and with `-lm none` (read into memory, like for like); ratio: the "
                      "engine ÷ that column, per run.", ""]
            columns = [bench for bench in next(iter(result["gguf"].values())) if bench != "engine"]
            lines += [f"| threads | storyterm GGUF engine, {kind} (decode tok/s) | "
                      + " | ".join(f"llama-bench {k}{' -lm ' + m if m else ''} (tg tok/s) | ratio" for k, m in columns)
                      + " |", "|---|---|" + "---|---|" * len(columns)]
            for t, figures_now in result["gguf"].items():
                ours = figures_now["engine"]
                cells = [f"{figures_now[c].show()} | {ratio_figure(ours, figures_now[c]).show(2, '×')}"
                         for c in columns]
                lines.append(f"| {t} | {ours.show()} | " + " | ".join(cells) + " |")
            lines.append("")
        if not figures:
            continue
        lines += ["| threads | storyterm fp32 | llama.cpp f32 | ratio | storyterm bf16 | llama.cpp f16 | ratio | "
                  "storyterm int8 | llama.cpp q8_0 | ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for t in threads:
            cells = []
            for dtype, _ in PAIRS:
                ours, theirs = figures[(dtype, t)]
                cells += [ours.show(), theirs.show(), ratio_figure(ours, theirs).show(2, "×")]
            lines.append(f"| {t} | " + " | ".join(cells) + " |")
        best_ours = max((f[0] for f in figures.values()), key=lambda f: f.median)
        best_q8 = max((figures[("int8", t)][1] for t in threads), key=lambda f: f.median)
        lines += ["", f"Fastest storyterm path ÷ fastest llama.cpp q8_0: **{best_ours.median / best_q8.median:.2f}×** "
                      f"({best_ours.median:.1f} vs {best_q8.median:.1f} tok/s; goal ≥ 1.0×)", ""]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=100)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="storyterm engines to compare: torch (fp32/bf16/int8 vs f32/f16/q8_0), gguf (q8_0)")
    parser.add_argument("--gguf-type", default="q8_0",
                        help="the GGUF engine's weight type (a llama-quantize type such as Q4_K_M; default q8_0)")
    parser.add_argument("--llama-bench", help="path to llama-bench (default: $LLAMA_BENCH, the shared build, PATH)")
    parser.add_argument("--scratch", type=Path, help="keep checkpoints and GGUF files here (reused by later runs)")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "side-by-side-cpu.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    binary = find_llama_bench(args.llama_bench)
    if binary is None:
        named = args.llama_bench or os.environ.get("LLAMA_BENCH")
        print(f"no executable llama-bench at {named}" if named else HOW_TO_BUILD, file=sys.stderr)
        return 2
    converter = find_converter(binary)
    if converter is None:
        print(f"convert_hf_to_gguf.py not found beside {binary}: set LLAMA_CPP_DIR to the llama.cpp source tree",
              file=sys.stderr)
        return 2
    threads = [int(t) for t in args.threads.split(",")]
    engines_wanted = [e for e in args.engines.split(",") if e]
    if not engines_wanted or set(engines_wanted) - set(ENGINES):
        print(f"--engines: choose from {', '.join(ENGINES)}", file=sys.stderr)
        return 2
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="storyterm-side-by-side-"))
    results = {}
    try:
        for name in args.models.split(","):
            results[name] = side_by_side(name, scratch, binary, converter, threads, args.runs, args.new_tokens,
                                         engines_wanted, args.gguf_type)
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    lines = report(results, threads, args.runs, args.new_tokens, load_before,
                   ", ".join(f"{x:.1f}" for x in os.getloadavg()), binary, engines_wanted, args.gguf_type)
    print("\n".join(lines))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
