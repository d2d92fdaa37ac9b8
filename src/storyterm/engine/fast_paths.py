"""Fast CPU generation: int8 dynamic weight quantization and the rule behind ``dtype auto`` on a CPU.

Generating one token reads every weight once, so on a CPU the speed is bound by memory bandwidth: int8 weights
(a quarter of fp32's bytes) give the largest gain. ``torch.ao.quantization.quantize_dynamic`` only replaces
``nn.Linear``, and HF GPT-2 uses ``transformers.pytorch_utils.Conv1D`` (``y = x @ W + b`` with ``W`` of shape
``(in, out)``), so those are first turned into ``nn.Linear`` with the transposed weight. Activations stay fp32
and are quantized per call (dynamic quantization); LayerNorm, embeddings and attention softmax stay fp32.

``benchmarks/bench_speed.py`` measures each path's speed and perplexity against fp32.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

INT8_NAME = "int8"
# Below this size the per-call cost of quantizing activations outweighs the smaller weight reads, and the
# model is fast in fp32 anyway (measured in benchmarks/bench_speed.py; see the README's Performance section).
AUTO_INT8_MIN_PARAMETERS = 5_000_000
# Quantized engines in the order torch prefers them on x86 / ARM.
_QUANTIZED_ENGINES = ("x86", "fbgemm", "qnnpack")


def int8_dtype() -> torch.dtype:
    """The marker dtype a LoadedModel carries when its Linear weights are int8 (``torch.qint8``)."""
    import torch

    return torch.qint8


def int8_supported() -> bool:
    """True when this torch build has a quantized CPU engine (x86/fbgemm on Intel/AMD, qnnpack on ARM)."""
    import torch

    engines = getattr(torch.backends.quantized, "supported_engines", [])
    return any(engine in engines for engine in _QUANTIZED_ENGINES)


def auto_cpu_dtype(parameter_count: int | None) -> torch.dtype:
    """``dtype auto`` on a CPU: int8 weights for models big enough to be bandwidth-bound, else fp32.

    ``None`` (size not known yet) → fp32. bf16 is never chosen automatically: it is slower than fp32 on CPUs
    without native bf16 instructions, and int8 beats it where it helps at all (see the benchmark)."""
    import torch

    if parameter_count is not None and parameter_count >= AUTO_INT8_MIN_PARAMETERS and int8_supported():
        return int8_dtype()
    return torch.float32


def conv1d_to_linear(model: nn.Module) -> int:
    """Replace every transformers ``Conv1D`` in ``model`` with an equivalent ``nn.Linear``; returns how many."""
    import torch
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    replaced = 0
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if not isinstance(child, Conv1D):
                continue
            in_features, out_features = child.weight.shape
            linear = nn.Linear(in_features, out_features, bias=child.bias is not None,
                               device=child.weight.device, dtype=child.weight.dtype)
            with torch.no_grad():
                linear.weight.copy_(child.weight.t())
                if child.bias is not None:
                    linear.bias.copy_(child.bias)
            setattr(parent, child_name, linear)
            replaced += 1
    return replaced


def quantize_int8(model: nn.Module, *, include_lm_head: bool = True) -> nn.Module:
    """Dynamic int8 quantization of every Linear (GPT-2's Conv1D included), in place on a CPU fp32 model.

    ``include_lm_head``: the output projection is the largest matrix of a small-vocabulary-heavy model such as
    GPT-2 124M (38.6 M of 124 M parameters); quantizing it gives a separate int8 copy of the tied embedding
    (the fp32 embedding stays for the input lookup)."""
    import torch
    from torch import nn

    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("int8 dynamic quantization runs on the CPU only")
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("int8 dynamic quantization needs an fp32 model")
    conv1d_to_linear(model)
    engine = torch.backends.quantized.engine
    if engine not in _QUANTIZED_ENGINES:
        supported = torch.backends.quantized.supported_engines
        torch.backends.quantized.engine = next(e for e in _QUANTIZED_ENGINES if e in supported)
    with warnings.catch_warnings():
        # torch.ao.quantization and quantized tensors are deprecated in favour of torchao, which is not a
        # dependency of storyterm; they still work in the torch versions it supports.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*(torch\.ao\.quantization|quantized tensor creation).*")
        from torch.ao.quantization import quantize_dynamic
        from torch.ao.quantization.qconfig import per_channel_dynamic_qconfig

        # One scale per output row: small models lose far less accuracy than with one scale per matrix.
        lm_head = getattr(model, "lm_head", None)
        spec = {
            name: per_channel_dynamic_qconfig
            for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and (include_lm_head or module is not lm_head)
        }
        return quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)


def int8_thread_count(cpu_count: int | None = None) -> int:
    """Intra-op threads for int8 decoding: half the cores, at least one.

    Measured on 2 cores (benchmarks/bench_speed.py): int8 decoding ran about 1.4× faster on 1 thread than on 2.
    Its matrix-vector products are too small to be worth splitting, and the other core is left to the UI, the
    streamer and the tokenizer. Not measured on larger machines."""
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, cores // 2)


_torch_default_threads: int | None = None
# Below this size a model decodes on few threads whatever its dtype. Measured on 2 cores (bench_speed.py): the
# 5.9 M built-in model in fp32 made 287 tok/s on 1 thread vs 133 on 2; the 124M shape 25.9 vs 28.1. Between the
# two sizes nothing was measured.
FEW_THREADS_MAX_PARAMETERS = 20_000_000


def apply_cpu_threads(dtype: torch.dtype, parameter_count: int | None = None) -> int | None:
    """Set torch's intra-op threads for a CPU model: ``int8_thread_count()`` for int8 and for models under
    ``FEW_THREADS_MAX_PARAMETERS``, torch's own default otherwise (a model switched from int8 to a large fp32 one
    gets its threads back). Nothing when the user chose a count (OMP_NUM_THREADS / MKL_NUM_THREADS). Returns the
    count set, or None."""
    import torch

    global _torch_default_threads
    if any(os.environ.get(name, "").strip() for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        return None
    if _torch_default_threads is None:
        _torch_default_threads = torch.get_num_threads()
    small = parameter_count is not None and parameter_count < FEW_THREADS_MAX_PARAMETERS
    threads = int8_thread_count() if is_int8(dtype) or small else _torch_default_threads
    torch.set_num_threads(threads)
    return threads


def is_int8(dtype: torch.dtype) -> bool:
    import torch

    return dtype == torch.qint8


def weight_load_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype weights are loaded in: fp32 for int8 (quantized after loading), else ``dtype`` itself."""
    import torch

    return torch.float32 if is_int8(dtype) else dtype
