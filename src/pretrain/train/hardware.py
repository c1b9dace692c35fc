"""Peak FLOP/s for MFU: a table of GPU datasheet numbers, or a measured fp32 matmul rate on CPU.

MFU (Chowdhery et al. 2022, PaLM, Appendix B) = achieved model FLOP/s / peak FLOP/s, where model FLOPs
per token come from the model (6N plus attention). The peak is always stated with its source in the
run's events, never a silent default. CPU peaks are measured once with a matmul benchmark at the current
thread count; the best rate seen is kept in ~/.cache/pretrain/peak_flops.json (PRETRAIN_CACHE moves it),
so a measurement disturbed by other jobs on the machine does not stick.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

# Dense (no sparsity) datasheet peaks in FLOP/s: (bf16/fp16 tensor core, fp32 non-tensor).
GPU_PEAKS: dict[str, tuple[float, float]] = {
    "H200": (989.4e12, 66.9e12),
    "H100 SXM": (989.4e12, 66.9e12),
    "H100 NVL": (835.0e12, 60.0e12),
    "H100 PCIe": (756.0e12, 51.2e12),
    "H100": (989.4e12, 66.9e12),
    "GH200": (989.4e12, 66.9e12),
    "B200": (2250e12, 80e12),
    "A100": (312e12, 19.5e12),
    "A10G": (125e12, 31.2e12),
    "L40S": (362e12, 91.6e12),
    "L4": (121e12, 30.3e12),
    "RTX 4090": (165.2e12, 82.6e12),
    "RTX 3090": (71e12, 35.6e12),
    "V100": (125e12, 15.7e12),
    "T4": (65e12, 8.1e12),
}


def gpu_peak(name: str, low_precision: bool) -> float | None:
    """Peak for a CUDA device name such as 'NVIDIA H100 80GB HBM3' (longest table key that matches)."""
    upper = name.upper()
    for key in sorted(GPU_PEAKS, key=len, reverse=True):
        parts = key.upper().split()
        if all(p in upper for p in parts):
            if key == "H100" and "PCIE" in upper:
                key = "H100 PCIe"
            return GPU_PEAKS[key][0 if low_precision else 1]
    return None


def _cache_file() -> Path:
    base = Path(os.environ.get("PRETRAIN_CACHE", Path.home() / ".cache" / "pretrain"))
    return base / "peak_flops.json"


def measure_cpu_peak(n: int = 1024, seconds: float = 0.5) -> float:
    """Best fp32 matmul FLOP/s over repeated n x n products at the current thread count."""
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    a @ b  # warm-up (thread pool, allocator)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == 0.0:
        t0 = time.perf_counter()
        a @ b
        dt = time.perf_counter() - t0
        best = max(best, 2 * n**3 / dt)
    return best


def cpu_key() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}|threads={torch.get_num_threads()}"


def cpu_peak() -> tuple[float, str]:
    """Measured (cached) fp32 peak of this CPU at the current thread count, and its source text."""
    key = cpu_key()
    path = _cache_file()
    cache: dict = {}
    if path.is_file():
        try:
            cache = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            cache = {}
    # Keep the best rate ever measured: a measurement taken while other jobs share the cores is low,
    # and a low cached peak would overstate MFU for good. A short re-measurement each run can only raise it.
    measured = measure_cpu_peak(seconds=0.25 if key in cache else 0.5)
    entry = cache.get(key, 0.0)
    # Other versions store {"flops": ..., ...} per key: read and update that field, keep the rest.
    best = float(entry.get("flops", 0.0)) if isinstance(entry, dict) else float(entry or 0.0)
    if measured > best:
        best = measured
        cache[key] = dict(entry, flops=measured) if isinstance(entry, dict) else measured
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(cache, indent=2))
        except OSError:
            pass  # a read-only home only costs a re-measurement next time
    return best, f"measured fp32 matmul on {key} (cached in {path})"


def peak_flops(device: torch.device, low_precision: bool, override: float = 0.0) -> tuple[float, str]:
    """Peak FLOP/s of one process's device and a sentence saying where the number comes from."""
    if override > 0:
        return override, "train.peak_flops (config)"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = gpu_peak(name, low_precision)
        if peak is None:
            raise ValueError(
                f"no peak FLOP/s known for GPU {name!r}; set train.peak_flops (FLOP/s per GPU) for MFU"
            )
        return peak, f"datasheet {'bf16' if low_precision else 'fp32'} dense peak of {name}"
    return cpu_peak()
