"""What the CPU runs natively, which decides which runtime is fastest and what int8 computes.

The same bench gave bf16 2.6x PyTorch fp32 on an EPYC with AVX512-BF16 and made it 3.5x slower
than fp32 on an EPYC with AVX2 only; the same int8 copy kept the suggested level on 98.15% of
the calibration items on the first and 96.83% on the second, whose int8 kernels differ
(eval/RESULTS.md). A speed figure or an int8 check names the CPU it was made on.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

# this machine's default thread count for every runtime: the CPUs this process may run on
# (OpenMP counts only those, and OMP_NUM_THREADS overrides it)
TORCH_THREADS = torch.get_num_threads()

# the instructions that change which runtime wins: bf16 (AVX512-BF16, AMX), int8 (VNNI), fp32
INSTRUCTIONS = {
    "amx_bf16": "AMX-BF16",
    "avx512_bf16": "AVX512-BF16",
    "avx512_vnni": "AVX512-VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512f": "AVX512",
    "avx2": "AVX2",
}


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """'2 CPU cores, AMD EPYC (AVX2), x86_64': the model and the instructions of INSTRUCTIONS it
    has; where /proc/cpuinfo is not there (not Linux), the platform's processor name."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    found = [label for flag, label in INSTRUCTIONS.items() if flag in flags]
    instructions = f" ({', '.join(found)})" if found else ""
    return f"{usable_cpus()} CPU cores, {name}{instructions}, {platform.machine()}"


def usable_cpus() -> int:
    """The CPUs this process may run on: fewer than the machine's under `taskset`, a cgroup
    cpuset or a container's CPU list, where a speed figure names the CPUs it ran on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def native_bf16() -> bool:
    """Whether bfloat16 runs natively here: a GPU, or a CPU with AVX512-BF16 or AMX. Elsewhere
    PyTorch emulates it, slower than fp32."""
    return bool(
        torch.cuda.is_available()
        or torch.cpu._is_avx512_bf16_supported()
        or torch.cpu._is_amx_tile_supported()
    )


def int8_kernels() -> str:
    """Which family of int8 matrix kernels this CPU runs: VNNI's dot products, or the older
    multiply-adds of AVX2 / AVX512 (whose 16-bit sums saturate), which round differently."""
    return "VNNI" if torch.cpu._is_vnni_supported() else torch.backends.cpu.get_cpu_capability()


def use_threads_for(runtime: str, share: int = 1) -> None:
    """On an ONNX runtime torch runs only the heads, and its idle OpenMP threads, spinning,
    took cores from ONNX Runtime's: one 300-word essay over HTTP took 82-95 ms at p50 with
    torch's default threads and 74 ms with OMP_NUM_THREADS=1 (2 cores, eval/RESULTS.md). Call
    it on the thread that runs the model: the setting belongs to the calling thread. `share`:
    the model calls that run side by side, which split torch's threads between them.

    Torch sets a thread's OpenMP threads on its first parallel op to whatever count was set
    last on any thread: asked first here, a thread that ran nothing yet takes its own count
    and keeps it (a wide model thread that had not was found on one thread, at 100 ms for an
    essay it scores in 55)."""
    torch.get_num_threads()
    torch.set_num_threads(max(1, TORCH_THREADS // share) if runtime.startswith("torch") else 1)
