"""What an installed wheel holds: enough to run the quick-start from any folder, and no
benchmarks (they live in the checkout's bench/, outside the package and the Bento)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The wheel `make bento` builds, unpacked as pip would install it."""
    out = tmp_path_factory.mktemp("wheel")
    had_build = (ROOT / "build").exists()
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
             "-w", str(out), str(ROOT)],
            check=True, capture_output=True,
        )  # fmt: skip
    finally:
        if not had_build:
            shutil.rmtree(ROOT / "build", ignore_errors=True)
    (wheel,) = out.glob("prescore-*.whl")
    installed = out / "site-packages"
    zipfile.ZipFile(wheel).extractall(installed)
    yield installed


@pytest.mark.slow
def test_the_quickstart_config_and_its_sample_come_with_the_wheel(
    wheel_files: Path, tmp_path: Path
) -> None:
    probe = (
        "from prescore import defaults; from prescore.training.config import load_config; "
        "c = load_config(defaults.QUICKSTART_CONFIG); print(c.data.path)"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,  # not a checkout
        env={"PYTHONPATH": str(wheel_files), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    data = Path(run.stdout.strip())
    assert data.is_file() and data.resolve().is_relative_to(wheel_files.resolve())


@pytest.mark.slow
def test_the_wheel_holds_no_benchmark(wheel_files: Path) -> None:
    package = wheel_files / "prescore"
    assert not list(package.rglob("bench*.py")), "benchmarks belong in the checkout's bench/"
    assert not (package / "eval" / "results").exists()
    assert not (package / "eval" / "probes").exists()
