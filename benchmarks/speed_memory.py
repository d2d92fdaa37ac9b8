"""bench_speed.py figure 5: peak memory, each measured in a fresh process (``bench_speed.py --rss-child``)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench_generation import PROMPT
from speed_timing import Variant, load, make_engine, request_for

BENCH_SPEED = Path(__file__).resolve().with_name("bench_speed.py")  # the script whose --rss-child runs one


def peak_rss_child(checkpoint: str, dtype: str, device: str) -> None:
    """Runs in a subprocess: load, generate 20 tokens, print the peak RSS (and GPU memory) as JSON."""
    report: dict[str, Any] = {}
    if checkpoint != "-":
        from storyterm.engine.devices import dtype_name

        loaded = load(Path(checkpoint), Variant(dtype, dtype), device)
        make_engine(loaded, 20).generate(request_for(PROMPT, 20))
        report["dtype"] = dtype_name(loaded.dtype)
        import torch

        if loaded.device.type == "cuda":
            report["gpu_peak_mb"] = torch.cuda.max_memory_allocated(loaded.device) / 2**20
    else:  # the fixed cost: Python with torch and transformers imported
        import torch  # noqa: F401
        import transformers  # noqa: F401

        import storyterm.engine.generation  # noqa: F401
    report["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(report))


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux keeps ru_maxrss across fork + exec (a child of this big process would report
    the parent's peak), so read VmHWM, the high-water mark of this program's own memory, where there is one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def peak_rss(checkpoint: Path | None, dtype: str, device: str) -> dict[str, Any]:
    command = [sys.executable, str(BENCH_SPEED), "--rss-child", str(checkpoint or "-"), dtype, "--device", device]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])
