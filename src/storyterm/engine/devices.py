"""Device and dtype choice: ``auto`` picks cuda, then mps, then cpu; bf16/fp16 on a GPU; on a CPU int8 weights
for models big enough to gain from them, else fp32 (see fast_paths.py)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import DeviceError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
DTYPE_CHOICES = ("auto", "fp32", "bf16", "fp16", "int8")

_DTYPE_ALIASES = {
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
}
_CUDA_DEVICE = re.compile(r"^cuda(?::(\d+))?$")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → the best available device; an explicit device that is not there → DeviceError."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' was asked for but Apple's Metal backend is not available here; "
                              "use --device cpu")
        return torch.device("mps")
    match = _CUDA_DEVICE.match(name)
    if match:
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {name!r} was asked for but this torch has no usable CUDA GPU; use --device cpu "
                "(or install a CUDA build of torch)"
            )
        index = int(match.group(1) or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(f"device {name!r} does not exist: this machine has {count} CUDA device(s)")
        return torch.device(name)
    raise DeviceError(f"unknown device {name!r}; choose one of: {', '.join(DEVICE_CHOICES)}")


def resolve_dtype(name: str, device: torch.device, parameter_count: int | None = None) -> torch.dtype:
    """``auto`` → bf16 on a GPU that supports it, else fp16; on a CPU int8 (``torch.qint8``: Linear weights
    quantized after loading) when ``parameter_count`` is known and large enough, else fp32.
    ``int8`` anywhere but on a CPU → DeviceError."""
    import torch

    from .fast_paths import INT8_NAME, auto_cpu_dtype, int8_dtype, int8_supported

    name = (name or "auto").strip().lower()
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return auto_cpu_dtype(parameter_count)
    if name == INT8_NAME:
        if device.type != "cpu":
            raise DeviceError(f"dtype int8 runs on the CPU only; on {device.type} use bf16 or fp16 (or auto)")
        if not int8_supported():
            raise DeviceError("dtype int8 needs a torch build with a quantized CPU engine; use fp32 or bf16")
        return int8_dtype()
    try:
        return getattr(torch, _DTYPE_ALIASES[name])
    except KeyError:
        raise DeviceError(f"unknown dtype {name!r}; choose one of: {', '.join(DTYPE_CHOICES)}") from None


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` → ``"bf16"`` (the spelling the CLI accepts)."""
    text = str(dtype).removeprefix("torch.")
    return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "qint8": "int8"}.get(text, text)
