"""What the speed benchmarks share: a figure (median of timed runs, with min–max), per-run ratios, progress on
stderr, a description of the machine, and where results are written."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the training package (perplexity) lives at the repository root

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Figure:
    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def show(self, digits: int = 1, unit: str = "") -> str:
        if not self.values:
            return "—"
        low, high = min(self.values), max(self.values)
        return f"{self.median:.{digits}f}{unit} ({low:.{digits}f}–{high:.{digits}f})"


def ratio_figure(numerators: Figure, denominators: Figure) -> Figure:
    """Per-run ratios of interleaved runs (so the min–max shows how steady the ratio is)."""
    return Figure([a / b for a, b in zip(numerators.values, denominators.values, strict=True)])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------------
# The machine


def cpu_description() -> str:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
    present = [flag for flag in wanted if flag in flags]
    return f"{model}, {os.cpu_count()} cores" + (f" ({', '.join(present)})" if present else "")


def machine_lines(device: str) -> list[str]:
    import torch
    import transformers

    lines = [
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; load average at start "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}",
        f"- CPU: {cpu_description()}",
        f"- Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} intra-op "
        f"threads, quantized engine {torch.backends.quantized.engine}), transformers {transformers.__version__}",
    ]
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        lines.append(f"- GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}")
    return lines
