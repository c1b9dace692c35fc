"""Peak FLOP/s for MFU: a table of GPU datasheet numbers, or a measured fp32 matmul rate on CPU.

MFU (Chowdhery et al. 2022, PaLM, Appendix B) = achieved model FLOP/s / peak FLOP/s, where model FLOPs
per token come from the model (6N plus attention). The peak is always stated with its source in the
run's events, never a silent default. CPU peaks are measured with an fp32 matmul benchmark at the current
thread count on every run (but a torchrun restart attempt's or a local rank > 0's, see
:func:`measures_here`), and the best rate seen is kept in ~/.cache/pretrain/cpu_peaks.json
(PRETRAIN_CACHE moves it; the first format's peak_flops.json is read, never written) with the load
average it was measured at (see :func:`merge_peak`): a measurement disturbed by other jobs on the
machine is never the final word; until one was taken on a quiet machine the source text says MFU may
be overstated, and the first run that finds the machine quiet measures for longer.

CPU threads: torch's default (one per core) with OpenMP's PASSIVE wait policy, which the ``pretrain``
package sets before torch loads (libgomp reads it only then). Under two competing busy processes on 2
cores a quickstart step slowed ~4x with the default spinning policy and ~1.2x with PASSIVE
(benchmarks/cpu_contention.py, docs/performance.md); :func:`cpu_threading` states what is in effect.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import pretrain

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
    return base / "cpu_peaks.json"


def _legacy_peak(key: str) -> float | None:
    """A peak the first cache format (peak_flops.json, bare numbers, no load recorded) holds for key."""
    path = _cache_file().with_name("peak_flops.json")
    try:
        value = json.loads(path.read_text()).get(key)
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


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


@dataclass(frozen=True)
class PeakEntry:
    """A cached CPU peak: the best rate measured, the 1-minute load average at that measurement, whether any
    measurement was taken on a quiet machine, and how many measurements were merged."""

    flops: float
    load: float
    quiet: bool
    count: int


def is_quiet(load: float, cores: int) -> bool:
    """Fewer runnable processes than cores (with half a core of slack for this process's own start-up)."""
    return load <= cores - 0.5


def merge_peak(old: PeakEntry | None, measured: float, load: float, cores: int) -> PeakEntry:
    """The peak policy: keep the maximum over real measurements (a rate cannot be measured above what the
    CPU can do, so the maximum is the least disturbed one), and remember whether a quiet one was seen."""
    quiet = is_quiet(load, cores)
    if old is None:
        return PeakEntry(measured, load, quiet, 1)
    if measured > old.flops:
        return PeakEntry(measured, load, old.quiet or quiet, old.count + 1)
    return PeakEntry(old.flops, old.load, old.quiet or quiet, old.count + 1)


def _entry(raw) -> PeakEntry | None:
    """A cache value; a bare float (the first cache format) counts as not measured on a quiet machine."""
    if isinstance(raw, (int, float)) and raw > 0:
        return PeakEntry(float(raw), float("nan"), False, 1)
    if isinstance(raw, dict):
        try:
            return PeakEntry(float(raw["flops"]), float(raw["load"]), bool(raw["quiet"]), int(raw["count"]))
        except (KeyError, TypeError, ValueError):
            return None
    return None


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform: treat the machine as busy (measure longer)
        return float("inf")


def measures_here() -> bool:
    """Whether this process measures the CPU peak (0.3 s to over a second of matmuls). A torchrun restart
    attempt (the job's first attempt measured this machine) and local ranks other than 0 (measuring side
    by side, they would only disturb each other) use the cached peak when there is one: a restart after a
    fault then starts that much sooner."""
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or "0"
    return restart == "0" and (os.environ.get("LOCAL_RANK", "0") or "0") == "0"


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
    old = _entry(cache.get(key, _legacy_peak(key)))
    if old is not None and not measures_here():
        return old.flops, (f"measured fp32 matmul on {key}, best of {old.count} runs (cached in {path}; not "
                           f"measured again in a torchrun restart or a local rank > 0); {cpu_threading()}")
    load = load_average()
    # A quiet machine that has no quiet measurement yet gets a long one (the real peak shows then); otherwise
    # a short one, as a measurement on busy cores cannot find the peak however long it runs.
    cores = os.cpu_count() or 1
    if old is None:
        seconds = 0.5
    else:
        seconds = 1.0 if not old.quiet and is_quiet(load, cores) else 0.25
    measured = measure_cpu_peak(seconds=seconds)
    entry = merge_peak(old, measured, load, cores)
    cache[key] = asdict(entry)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cache, indent=2))
    except OSError:
        pass  # a read-only home only costs a re-measurement next time
    note = "" if entry.quiet else "; no measurement on a quiet machine yet, so MFU may be overstated"
    return entry.flops, (f"measured fp32 matmul on {key}, best of {entry.count} runs "
                         f"(cached in {path}){note}; {cpu_threading()}")


def cpu_threading() -> str:
    """The CPU threading in effect: torch's intra-op threads and OpenMP's wait policy."""
    policy = os.environ.get("OMP_WAIT_POLICY", "")
    text = f"torch threads {torch.get_num_threads()}, OMP_WAIT_POLICY={policy or 'unset (libgomp spins)'}"
    if not pretrain.WAIT_POLICY_BEFORE_TORCH:
        text += " (torch was loaded before pretrain, so libgomp may not use this policy)"
    return text


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
