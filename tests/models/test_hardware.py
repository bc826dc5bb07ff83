"""A speed figure names the CPU by the instructions that decide which runtime wins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prescore.models.hardware import cpu_description


def test_the_cpu_is_named_with_the_instructions_that_decide_the_runtime(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC 9R14\n"
        "flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni avx512_bf16 sha_ni\n"
        "processor\t: 1\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2\n"
    )
    described = cpu_description(cpuinfo)
    assert "AMD EPYC 9R14 (AVX512-BF16, AVX512-VNNI, AVX512, AVX2)" in described

    cpuinfo.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx avx2 fma\n")
    assert "AMD EPYC (AVX2)," in cpu_description(cpuinfo)


def test_without_cpuinfo_it_still_names_the_cores(tmp_path: Path) -> None:
    assert "CPU cores" in cpu_description(tmp_path / "absent")


def test_the_cores_counted_are_those_the_process_may_run_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pinned to 2 of a machine's 16 cores (`taskset`, a cpuset), a speed figure is 2 cores'."""
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5})
    assert cpu_description(tmp_path / "absent").startswith("2 CPU cores, ")


def test_each_model_thread_keeps_its_own_torch_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide model thread set before a narrow one must not take the narrow one's count on
    its first op (torch copies the count set last on any thread into a fresh thread)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from prescore.models import hardware

    monkeypatch.setattr(hardware, "TORCH_THREADS", 4)
    threads = torch.get_num_threads()
    wide, narrow = ThreadPoolExecutor(1), ThreadPoolExecutor(1)
    ran = threading.Event()

    def first_op() -> int:
        torch.ones(64, 64) @ torch.ones(64, 64)
        ran.set()
        return torch.get_num_threads()

    try:
        wide.submit(hardware.use_threads_for, "torch-bf16").result()
        narrow.submit(hardware.use_threads_for, "torch-bf16", 2).result()  # set last
        assert wide.submit(first_op).result() == 4 and ran.is_set()
        assert narrow.submit(first_op).result() == 2
        assert narrow.submit(hardware.use_threads_for, "onnx-fp32", 2).result() is None
        assert narrow.submit(torch.get_num_threads).result() == 1  # ONNX: torch runs the heads
    finally:
        wide.shutdown()
        narrow.shutdown()
        torch.set_num_threads(threads)  # the count fresh threads copy, as it was
