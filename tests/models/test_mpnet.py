"""`base_model: mpnet` joins the registry's split-zip wheels once, and refuses what fails the check.

The real pieces are 470 MB; these tests split a tiny encoder's folder the same way.
"""

from __future__ import annotations

import importlib.metadata
import zipfile
from pathlib import Path

import pytest

from prescore.models import mpnet
from prescore.models.base_model import resolve_base_model


def split_archive(encoder: Path, into: Path, pieces: int = 3) -> list[Path]:
    """The encoder folder zipped under `all-mpnet-base-v2/`, cut in byte pieces like the wheels."""
    archive = into / "whole.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for file in sorted(encoder.rglob("*")):
            if file.is_file():
                out.write(file, f"{mpnet.FOLDER}/{file.relative_to(encoder)}")
    data = archive.read_bytes()
    size = len(data) // pieces + 1
    paths = []
    for n in range(pieces):
        path = into / f"{mpnet.FOLDER}.zip.{n + 1:03d}"
        path.write_bytes(data[n * size : (n + 1) * size])
        paths.append(path)
    return paths


@pytest.fixture
def pieces(tiny_encoder: Path, tmp_path: Path) -> list[Path]:
    folder = tmp_path / "pieces"
    folder.mkdir()
    return split_archive(tiny_encoder, folder)


def test_the_pieces_join_into_a_folder_sentence_transformers_loads(
    pieces: list[Path], tiny_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentence_transformers import SentenceTransformer

    monkeypatch.setenv("PRESCORE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(mpnet, "installed_parts", lambda: pieces)
    monkeypatch.setattr(mpnet, "WEIGHTS_SHA256", mpnet.sha256_of(tiny_encoder / mpnet.WEIGHTS))

    folder = Path(resolve_base_model("mpnet"))

    assert folder == tmp_path / "cache" / mpnet.FOLDER
    assert SentenceTransformer(str(folder), device="cpu").encode(["a lesson"]).shape == (1, 32)
    for piece in pieces:  # assembled once: later uses never read the pieces again
        piece.unlink()
    assert Path(resolve_base_model("mpnet")) == folder


def test_weights_that_fail_the_checksum_are_refused_and_leave_nothing(
    pieces: list[Path], tmp_path: Path
) -> None:
    target = tmp_path / "cache" / mpnet.FOLDER
    with pytest.raises(mpnet.BaseModelUnavailable, match="refusing to use it") as refused:
        mpnet.assemble(pieces, target, weights_sha256="0" * 64)
    assert "--force-reinstall" in str(refused.value)
    assert list((tmp_path / "cache").iterdir()) == []  # no folder, no leftover scratch


def test_a_missing_piece_says_which_command_installs_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def not_installed(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(FileNotFoundError, match=r"pip install 'prescore\[mpnet\]'"):
        resolve_base_model("mpnet")


def test_pieces_that_are_not_a_zip_are_refused(tmp_path: Path) -> None:
    piece = tmp_path / "all-mpnet-base-v2.zip.001"
    piece.write_bytes(b"not a zip archive")
    with pytest.raises(mpnet.BaseModelUnavailable, match="not a zip archive"):
        mpnet.assemble([piece], tmp_path / "cache" / mpnet.FOLDER)
    assert list((tmp_path / "cache").iterdir()) == []
