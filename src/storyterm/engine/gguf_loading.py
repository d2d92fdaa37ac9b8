"""Loading a GGUF file with llama.cpp (the ``llama-cpp-python`` bindings, ``pip install 'storyterm[gguf]'``).

The file carries its weights (already quantized: q8_0, q4_k…), its tokenizer (``gguf_tokenizer.py``) and often a
chat template. ``llama_cpp`` is imported only when a GGUF file is loaded, so storyterm runs without it; a GGUF file
without it gets one line saying what to install. The engine is ``llama_cpp_backend.LlamaCppEngine``.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DeviceError, ModelLoadError

if TYPE_CHECKING:
    from collections.abc import Callable

    from .loading import LoadedModel, ModelSpec

GGUF_SUFFIX = ".gguf"
INSTALL_HINT = ("GGUF models need the llama.cpp backend: pip install 'storyterm[gguf]' "
                "(it builds llama.cpp, so it needs a C compiler and cmake)")
# A GGUF file's own context length can be 128 k tokens; its KV cache is allocated up front, so storyterm asks for
# at most this much (a long story's window slides as with any model).
MAX_CONTEXT_WINDOW = 8192


def is_gguf(source: str | os.PathLike[str]) -> bool:
    return str(source).strip().lower().endswith(GGUF_SUFFIX)


def llama_cpp_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


@dataclass
class GGUFModel:
    """A loaded GGUF file: ``llama`` (a ``llama_cpp.Llama``) runs it; the rest is what the file says."""

    llama: Any
    path: Path
    architecture: str
    weight_type: str  # llama.cpp's name for the file's weight type, e.g. "Q8_0", "F16", "Q4_K - Medium"
    parameters: int
    threads: int
    generation_config: Any = None  # .eos_token_id: every end-of-generation token of the vocabulary
    metadata: dict[str, str] = field(default_factory=dict)
    in_memory: bool = False  # the weights were read into memory (reads_into_memory), not mapped from the file


def default_threads() -> tuple[int, int]:
    """(decoding threads, prompt-reading threads). llama.cpp's threads wait for each other by spinning, so decoding
    takes half the CPUs (llama-cpp-python's own default: one per physical core on most machines); with a busy
    second core, two threads made a small model 10-100x slower here. Reading a prompt is one large batch: all of
    them. OMP_NUM_THREADS, when set, is the decoding count."""
    try:
        cpus = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        cpus = max(1, os.cpu_count() or 1)
    chosen = os.environ.get("OMP_NUM_THREADS", "").strip()
    decoding = int(chosen) if chosen.isdigit() and int(chosen) > 0 else max(1, cpus // 2)
    return decoding, max(decoding, cpus)


def reads_into_memory(file_size: int, available: int | None, choice: str = "") -> bool:
    """Whether llama.cpp reads the weights into memory of its own rather than mapping the file (mmap, its default).
    ``choice`` ($STORYTERM_GGUF_MMAP): "0" reads them when they take at most half of the memory available, "1" or
    nothing maps. Reading made llama-bench 7-13 % faster here (``-lm none``), but not storyterm's engine: on an
    idle machine its 0.5 B passage decoded 1 ms a token slower from the read copy (docs/performance.md, session 9)."""
    return choice.strip() == "0" and available is not None and file_size <= available // 2


def available_memory() -> int | None:
    """Bytes of memory available for new data (Linux's MemAvailable, else the free pages), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def load_gguf(spec: ModelSpec, on_progress: Callable[[str], None] | None = None) -> LoadedModel:
    """Load a .gguf file with llama.cpp. ModelLoadError / DeviceError with a one-line message."""
    from types import SimpleNamespace

    import torch

    from .checkpoint_defaults import resolve_settings
    from .fast_paths import apply_cpu_threads
    from .genres import token_genres
    from .gguf_tokenizer import GGUFTokenizer
    from .loading import LoadedModel
    from .words import gguf_words_reader

    progress = on_progress or (lambda _message: None)
    path = Path(spec.source.strip()).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"no such GGUF file: {spec.source}")
    dtype = (spec.dtype or "auto").strip().lower()
    if dtype != "auto":
        raise ModelLoadError(f"--dtype {dtype} does not apply to a GGUF file: its weight type is part of the file "
                             "(use --dtype auto, or a GGUF file of another type)")
    try:
        import llama_cpp
    except ImportError:
        raise ModelLoadError(INSTALL_HINT) from None
    gpu_layers = _gpu_layers(spec.device, llama_cpp.llama_supports_gpu_offload())
    progress(f"Loading {path.name} with llama.cpp…")
    threads, batch_threads = default_threads()
    try:
        with quiet_llama_cpp():
            probe = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=True)
            metadata = dict(probe.metadata)
            architecture = metadata.get("general.architecture", "?")
            trained = _int(metadata.get(f"{architecture}.context_length")) or MAX_CONTEXT_WINDOW
            probe.close()
            # Flash attention: llama.cpp's own default (auto: on where the backend has it) and llama-bench's;
            # llama-cpp-python turns it off. A 124M q8_0 decode step took 8.6 ms without it, 7.4 ms with it.
            read = not gpu_layers and reads_into_memory(path.stat().st_size, available_memory(),
                                                        os.environ.get("STORYTERM_GGUF_MMAP", ""))
            llama = llama_cpp.Llama(model_path=str(path), n_ctx=min(trained, MAX_CONTEXT_WINDOW),
                                    n_gpu_layers=gpu_layers, n_threads=threads, n_threads_batch=batch_threads,
                                    flash_attn=True, use_mmap=not read, verbose=True)
        llama.verbose = False  # generate() would print every prefix-cache hit to stderr
    except Exception as error:  # noqa: BLE001 - llama.cpp says little more than "failed to load"
        reason = f"{_first_line(error)}{last_llama_cpp_error()}"
        raise ModelLoadError(f"llama.cpp cannot load {path.name}: {reason}") from error
    tokenizer = GGUFTokenizer(llama, metadata)
    # torch only runs the logits processors (one vocabulary row per token): on its default threads, its pool
    # competed with llama.cpp's and the repetition penalty cost 15 % of the 124M shape's speed; few threads: none.
    apply_cpu_threads(torch.float32, parameter_count=0)
    model = GGUFModel(
        llama=llama, path=path, architecture=architecture, weight_type=_weight_type(llama_cpp, llama),
        parameters=int(llama_cpp.llama_model_n_params(llama.model)), threads=threads, in_memory=read,
        generation_config=SimpleNamespace(eos_token_id=list(tokenizer.end_token_ids)), metadata=metadata,
    )
    progress("Model ready.")
    checkpoint = sampling_values(metadata)
    return LoadedModel(
        spec=spec,
        model=model,
        tokenizer=tokenizer,
        name=path.name,
        device=torch.device("cuda" if gpu_layers else "cpu"),
        dtype=model.weight_type.split(" ")[0].lower(),  # devices.dtype_name shows it as is ("q8_0")
        genres=token_genres(tokenizer),  # a storyterm checkpoint exported with training/export_gguf.py keeps them
        context_window=min(trained, int(llama.n_ctx())),  # llama.cpp rounds n_ctx up; positions end at trained
        generation_defaults=resolve_settings({}, checkpoint),
        path=path,
        checkpoint_settings=checkpoint,
        known_words=gguf_words_reader(metadata),  # a storyterm export carries its words.txt
    )


# GGUF's sampling defaults (general.sampling.*) as storyterm's settings; a temperature of 0 means greedy.
_SAMPLING_KEYS = {"general.sampling.temp": "temperature", "general.sampling.top_k": "top_k",
                  "general.sampling.top_p": "top_p", "general.sampling.min_p": "min_p",
                  "general.sampling.penalty_repeat": "repetition_penalty"}


def sampling_values(metadata: dict[str, str]) -> dict[str, Any]:
    """The sampler values the file's metadata sets, as checkpoint_defaults reads a generation_config.json."""
    from .checkpoint_defaults import checked_values

    data: dict[str, Any] = {}
    for key, name in _SAMPLING_KEYS.items():
        try:
            data[name] = (int if name == "top_k" else float)(float(metadata[key]))
        except (KeyError, ValueError):
            continue
    if data.get("temperature") == 0:
        data["do_sample"] = False
        del data["temperature"]
    elif data:
        data["do_sample"] = True
    return checked_values(data)


def _gpu_layers(device: str, offload_supported: bool) -> int:
    device = (device or "auto").strip().lower()
    if device in ("auto", "cpu"):
        return -1 if device == "auto" and offload_supported else 0
    if not offload_supported:
        raise DeviceError(f"this llama.cpp build runs GGUF models on the CPU only; use --device cpu "
                          f"(or rebuild llama-cpp-python with {device} support)")
    return -1


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _weight_type(llama_cpp: Any, llama: Any) -> str:
    """From llama.cpp's model description ("gpt2 ?B Q8_0", "llama 1B Q4_K - Medium")."""
    buffer = ctypes.create_string_buffer(256)
    llama_cpp.llama_model_desc(llama.model, buffer, len(buffer))
    parts = buffer.value.decode("utf-8", errors="replace").split(" ", 2)
    return parts[2].removeprefix("all ") if len(parts) == 3 else "?"


# llama.cpp logs through a callback; storyterm keeps the last lines for error messages instead of printing them
# over the editor.
_log_lines: list[str] = []
_log_callback: Any = None


def last_llama_cpp_error() -> str:
    errors = [line for line in _log_lines if "error" in line.lower() or "failed" in line.lower()]
    return f" ({errors[-1]})" if errors else ""


@contextlib.contextmanager
def quiet_llama_cpp():
    """Route llama.cpp's log to a short in-memory list and llama-cpp-python's prints away from the terminal (its
    own quiet mode redirects file descriptors 1 and 2, which would blank the editor's screen meanwhile)."""
    global _log_callback
    import llama_cpp

    if _log_callback is None:
        @llama_cpp.llama_log_callback
        def keep(level: int, text: bytes, user_data: Any) -> None:
            _log_lines.append(text.decode("utf-8", errors="replace").strip())
            del _log_lines[:-20]

        _log_callback = keep
    _log_lines.clear()
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        yield


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
