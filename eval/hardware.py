"""The CPU a speed figure was measured on, named by what decides which runtime is fastest.

The same bench gave bf16 2.6x PyTorch fp32 on an EPYC with AVX512-BF16 and made it 3.5x slower
than fp32 on an EPYC with AVX2 only (eval/RESULTS.md): a figure without the instruction set
cannot be compared with another.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

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
    return f"{os.cpu_count()} CPU cores, {name}{instructions}, {platform.machine()}"
