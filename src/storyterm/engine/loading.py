"""Loading a causal LM and its tokenizer from the built-in checkpoint, a local directory or the Hugging Face cache.

Every expected failure becomes a ModelLoadError or DeviceError with one line for the user. Remote code is never
run, and pickle weights are refused unless the caller opts in.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from .architectures import check_causal_lm
from .checkpoint_defaults import checkpoint_values, resolve_settings
from .devices import resolve_device, resolve_dtype
from .errors import ModelLoadError
from .fast_paths import apply_cpu_threads, is_int8, quantize_int8, weight_load_dtype
from .genres import token_genres
from .instruct import has_chat_template
from .settings import SamplerSettings
from .words import checkpoint_words_reader

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .engine_base import EngineBase

BUILTIN = "builtin"
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "models" / "builtin"
DEFAULT_CONTEXT_WINDOW = 1024
HUB_CONNECT_TIMEOUT_S = 3.0

SAFETENSORS_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class ModelSpec:
    source: str = BUILTIN  # "builtin" | a local directory | a hub id
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto | fp32 | bf16 | fp16 | int8
    allow_pickle: bool = False


@dataclass
class LoadedModel:
    spec: ModelSpec
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str  # "builtin", a directory name, or the hub id
    device: torch.device
    dtype: torch.dtype
    genres: list[str]  # its genre tokens; [] means none: genres are then given in words (engine/genres.py)
    context_window: int
    generation_defaults: SamplerSettings  # storyterm's defaults with the checkpoint's values filled in
    path: Path | None = None  # the directory the files were read from
    # What the checkpoint's generation_config.json sets (engine/checkpoint_defaults.py): fills what the writer
    # left unset
    checkpoint_settings: dict[str, Any] = field(default_factory=dict)
    # Reads the word list the word guard spells by (engine/words.py); None: the model has none, the guard is off
    known_words: Callable[[], frozenset[str] | None] | None = None

    @property
    def has_word_list(self) -> bool:
        """The word guard can work: the checkpoint ships words.txt (a GGUF export: its storyterm.words)."""
        return self.known_words is not None

    @property
    def free_mode(self) -> bool:
        """No genre tokens (genres, if any, are given in words)."""
        return not self.genres

    @property
    def has_chat_template(self) -> bool:
        """An instruct/chat checkpoint: instruct mode is offered (and on by default)."""
        return has_chat_template(self.tokenizer)


# The engine uses transformers 5.24's cache API: generate(cache=…) (earlier releases: past_key_values) and the cache
# layers' crop / past recording that prompt-cache reuse relies on (kv_cache.py).
MIN_TRANSFORMERS = (5, 24)


def check_transformers_version(version: str | None = None) -> None:
    """Refuse, in one line, a transformers release older than the engine needs (an old environment, --no-deps)."""
    import re

    import transformers

    version = version or transformers.__version__
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    if numbers < MIN_TRANSFORMERS:
        wanted = ".".join(map(str, MIN_TRANSFORMERS))
        raise ModelLoadError(f"storyterm needs transformers >= {wanted} (found {version}): "
                             f"pip install -U 'transformers>={wanted},<6'")


def load_model(spec: ModelSpec, on_progress: Callable[[str], None] | None = None) -> LoadedModel:
    """Load ``spec`` and return the model in eval mode on its device. Raises ModelLoadError / DeviceError.
    A ``.gguf`` file is loaded with llama.cpp (``gguf_loading.py``)."""
    from .gguf_loading import is_gguf, load_gguf

    if is_gguf(spec.source):
        return load_gguf(spec, on_progress)
    check_transformers_version()
    progress = on_progress or (lambda _message: None)
    progress(f"Locating model {spec.source!r}…")
    directory, name = resolve_source(spec.source, allow_pickle=spec.allow_pickle)
    check_weights(directory, name, allow_pickle=spec.allow_pickle)
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    _quiet_transformers()

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(directory, trust_remote_code=False)
    except Exception as error:  # noqa: BLE001 - anything here means "not a usable checkpoint"
        raise ModelLoadError(f"cannot read the model config of {name}: {_first_line(error)}") from error
    check_causal_lm(config, name)
    progress("Loading tokenizer…")
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
    except Exception as error:  # noqa: BLE001
        raise ModelLoadError(f"cannot load the tokenizer of {name}: {_first_line(error)}") from error
    progress(f"Loading weights ({device.type})…")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            directory,
            config=config,
            dtype=weight_load_dtype(dtype),
            trust_remote_code=False,
            use_safetensors=None if spec.allow_pickle else True,
        )
    except ValueError as error:
        raise ModelLoadError(
            f"{name} ({getattr(config, 'model_type', '?')}) is not a causal language model storyterm can run"
        ) from error
    except Exception as error:  # noqa: BLE001
        raise ModelLoadError(f"cannot load the weights of {name}: {_first_line(error)}") from error
    try:
        model.to(device)
    except Exception as error:  # noqa: BLE001 - e.g. out of GPU memory
        raise ModelLoadError(f"cannot move {name} to {device}: {_first_line(error)}") from error
    model.eval()
    parameters = model.num_parameters()
    if device.type == "cpu" and (spec.dtype or "auto").strip().lower() == "auto":
        dtype = resolve_dtype(spec.dtype, device, parameters)  # int8 pays off only for larger models
    if is_int8(dtype):
        progress("Quantizing weights to int8…")
        try:
            model = quantize_int8(model)
        except Exception as error:  # noqa: BLE001 - e.g. an architecture whose layers cannot be quantized
            raise ModelLoadError(f"cannot quantize {name} to int8: {_first_line(error)}; use --dtype fp32") from error
    if device.type == "cpu":
        apply_cpu_threads(dtype, parameters)  # process-wide: storyterm runs one model at a time
    progress("Model ready.")
    return LoadedModel(
        spec=spec,
        model=model,
        tokenizer=tokenizer,
        name=name,
        device=device,
        dtype=dtype,
        genres=token_genres(tokenizer, directory),
        context_window=context_window_of(config, tokenizer),
        generation_defaults=resolve_settings({}, checkpoint := checkpoint_values(directory)),
        path=directory,
        checkpoint_settings=checkpoint,
        known_words=checkpoint_words_reader(directory),
    )


def open_engine(loaded: LoadedModel, **options: Any) -> EngineBase:
    """The engine that runs ``loaded``: llama.cpp's for a GGUF file, else transformers' (StoryEngine)."""
    from .gguf_loading import GGUFModel
    from .llama_cpp_backend import LlamaCppEngine

    if isinstance(loaded.model, GGUFModel):
        return LlamaCppEngine(loaded, **options)
    from .generation import StoryEngine

    return StoryEngine(loaded, **options)


# ---------------------------------------------------------------------------------------------------------------------
# Sources


def resolve_source(source: str, *, allow_pickle: bool = False) -> tuple[Path, str]:
    """Map a model source to a local directory and a display name."""
    source = (source or BUILTIN).strip()
    if source == BUILTIN:
        if not (BUILTIN_DIR / "config.json").is_file():
            raise ModelLoadError(
                f"the built-in model is not installed ({BUILTIN_DIR} has no config.json): train it with the "
                "training/ scripts, or pass --model with a local checkpoint directory or a cached hub id"
            )
        return BUILTIN_DIR, BUILTIN
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{source} is a file; --model needs a checkpoint directory, a .gguf file, "
                                 "'builtin' or a hub id")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{source} is not a Hugging Face checkpoint directory (no config.json in it)")
        return path, path.resolve().name
    if _looks_like_path(source):
        raise ModelLoadError(f"no such model directory: {source}")
    return _resolve_hub_id(source, allow_pickle=allow_pickle), source


def _looks_like_path(source: str) -> bool:
    return (
        source.startswith((".", "~", os.sep, "/"))
        or Path(source).is_absolute()
        or source.count("/") > 1
        or source.endswith("/")
    )


def hub_offline() -> bool:
    """Read at call time: the environment may change after huggingface_hub was imported."""
    return any(
        os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_cache_dir() -> Path:
    """The hub cache as the environment says now (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home).expanduser() / "huggingface" / "hub"


def hub_reachable(timeout: float = HUB_CONNECT_TIMEOUT_S) -> bool:
    """A quick TCP check so an unreachable hub gives an error in seconds instead of a long retry loop."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja", "tokenizer*"]


def _resolve_hub_id(repo_id: str, *, allow_pickle: bool) -> Path:
    from huggingface_hub import snapshot_download

    patterns = _HUB_PATTERNS + (["*.bin"] if allow_pickle else [])
    cache_dir = hub_cache_dir()
    not_available = (
        f"model {repo_id!r} is not in the local Hugging Face cache and the hub cannot be reached; "
        "use --model builtin or --model with a local checkpoint directory"
    )
    try:
        snapshot = Path(
            snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True, allow_patterns=patterns)
        )
        if (snapshot / "config.json").is_file():
            return snapshot
    except Exception:  # noqa: BLE001 - not cached (or an invalid id): try the hub below
        pass
    if hub_offline() or not hub_reachable():
        raise ModelLoadError(not_available)
    try:
        snapshot = Path(snapshot_download(repo_id, cache_dir=cache_dir, allow_patterns=patterns))
    except Exception as error:  # noqa: BLE001
        raise ModelLoadError(f"cannot download model {repo_id!r} from the hub: {_first_line(error)}") from error
    if not (snapshot / "config.json").is_file():
        raise ModelLoadError(f"hub repository {repo_id!r} has no config.json; it is not a transformers model")
    return snapshot


def check_weights(directory: Path, name: str, *, allow_pickle: bool) -> None:
    """Safetensors are always fine; pickle weights only with allow_pickle (they can run code when loaded)."""
    if any((directory / file).is_file() for file in SAFETENSORS_FILES):
        return
    if any((directory / file).is_file() for file in PICKLE_FILES):
        if allow_pickle:
            return
        raise ModelLoadError(
            f"{name} only has pickle weights (pytorch_model.bin), which can run code when loaded; "
            "convert it to safetensors or pass --allow-pickle if you trust it"
        )
    raise ModelLoadError(f"{name} has no model weights (no model.safetensors)")


# ---------------------------------------------------------------------------------------------------------------------
# What the checkpoint tells us


def context_window_of(config: Any, tokenizer: PreTrainedTokenizerBase | None = None) -> int:
    for attr in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    return DEFAULT_CONTEXT_WINDOW


# ---------------------------------------------------------------------------------------------------------------------
# Listing models


@dataclass(frozen=True)
class ModelInfo:
    source: str  # what to pass to --model
    kind: str  # "builtin" | "hub cache" | "gguf, hub cache"
    installed: bool
    detail: str


def list_models() -> list[ModelInfo]:
    """The built-in model, the causal LMs in the local Hugging Face cache and the GGUF files there."""
    builtin_ok = (BUILTIN_DIR / "config.json").is_file()
    models = [
        ModelInfo(
            source=BUILTIN,
            kind="builtin",
            installed=builtin_ok,
            detail=_describe_config(BUILTIN_DIR / "config.json") if builtin_ok else "not installed yet",
        )
    ]
    cache = hub_cache_dir()
    if not cache.is_dir():
        return models
    for repo_dir in sorted(cache.glob("models--*")):
        repo_id = repo_dir.name.removeprefix("models--").replace("--", "/")
        for config_file in sorted((repo_dir / "snapshots").glob("*/config.json")):
            if _is_causal_lm(config_file):
                models.append(ModelInfo(repo_id, "hub cache", True, _describe_config(config_file)))
                break
        models += gguf_models(repo_dir)
    return models


def gguf_models(repo_dir: Path) -> list[ModelInfo]:
    """The .gguf files of a hub cache repository (one per file name, from its newest snapshot)."""
    from .gguf_loading import llama_cpp_installed

    newest: dict[str, Path] = {}
    for file in sorted((repo_dir / "snapshots").glob("*/*.gguf"), key=lambda f: f.stat().st_mtime):
        newest[file.name] = file
    installed = llama_cpp_installed()
    note = "" if installed else "; needs pip install 'storyterm[gguf]'"
    return [ModelInfo(str(file), "gguf, hub cache", installed, f"{file.stat().st_size / 1e9:.2f} GB{note}")
            for _name, file in sorted(newest.items())]


def _read_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_causal_lm(config_file: Path) -> bool:
    from types import SimpleNamespace

    from .architectures import refusal_reason

    data = _read_json(config_file)
    return bool(data.get("architectures")) and refusal_reason(SimpleNamespace(**data)) is None


def _describe_config(config_file: Path) -> str:
    data = _read_json(config_file)
    parts = [str(data.get("model_type", "?"))]
    layers = data.get("n_layer") or data.get("num_hidden_layers")
    if layers:
        parts.append(f"{layers} layers")
    window = data.get("n_positions") or data.get("max_position_embeddings")
    if window:
        parts.append(f"{window} positions")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------------------------------


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _quiet_transformers() -> None:
    """Loading progress bars and advisory warnings would scribble over the CLI's stdout and the TUI."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
