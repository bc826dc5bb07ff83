"""A speed figure names the CPU by the instructions that decide which runtime wins."""

from __future__ import annotations

from pathlib import Path

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
