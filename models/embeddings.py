"""Frozen sentence-transformers embeddings and one head per criterion (ridge or logistic).

Long evidence is embedded in overlapping word windows and the window embeddings averaged, so
a lesson plan is read whole rather than cut at the encoder's window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import joblib
import numpy as np

from prescore.models.base_model import BUNDLED, resolve_base_model
from prescore.models.embedding_cache import EmbeddingCache
from prescore.models.heads import HeadsScorer
from prescore.models.inputs import chunk_words
from prescore.progress import StepProgress

PROGRESS_CHUNK_BATCHES = 32  # batches per progress step


class EmbeddingScorer(HeadsScorer):
    kind = "embeddings"

    def __init__(
        self,
        base_model: str = BUNDLED,
        window_words: int = 180,
        overlap_words: int = 30,
        head: str = "ridge",
        alpha: float | None = None,
        batch_size: int = 32,
        cache_dir: str | None = None,
        length_features: bool = False,
    ) -> None:
        self.base_model = base_model
        self.window_words = window_words
        self.overlap_words = overlap_words
        self.head = head  # "ridge" (ordinal) or "logistic"; see models/heads.py
        self.alpha = alpha  # None: chosen per criterion (see models/heads.py)
        self.length_features = length_features  # see models/length.py
        self.batch_size = batch_size
        # where text vectors are kept between fits (benchmark folds); None: nowhere
        self.cache_dir = cache_dir

    def _encoder(self) -> Any:
        if getattr(self, "encoder_", None) is None:
            import torch
            from sentence_transformers import SentenceTransformer

            # a GPU where there is one (a lent benchmark machine); the vectors match the CPU's
            device = "cuda" if torch.cuda.is_available() else "cpu"
            self.encoder_ = SentenceTransformer(resolve_base_model(self.base_model), device=device)
        return self.encoder_

    def embed(self, texts: list[str]) -> np.ndarray:
        """One vector per text; identical texts (one essay, six criteria) are embedded once,
        and with a cache_dir, once across fits."""
        cache = (
            EmbeddingCache(Path(self.cache_dir), self._cache_namespace())
            if self.cache_dir
            else None
        )
        unique = list(dict.fromkeys(texts))
        out = cache.get(unique) if cache else {}
        missing = [t for t in unique if t not in out]
        windows = [chunk_words(t, self.window_words, self.overlap_words) for t in missing]
        flat = [w for ws in windows for w in ws]
        if flat:
            vectors = self.encode_windows(flat)
            fresh, start = {}, 0
            for text, ws in zip(missing, windows, strict=True):
                fresh[text] = vectors[start : start + len(ws)].mean(axis=0)
                start += len(ws)
            if cache:
                cache.put(fresh)
            out.update(fresh)
        return np.stack([out[t] for t in texts])

    def encode_windows(self, windows: list[str]) -> np.ndarray:
        """Window vectors. A long encode (a benchmark set is minutes to tens of minutes on a
        CPU) goes in chunks under a progress bar; a short one, as in serving, shows nothing."""
        chunk = PROGRESS_CHUNK_BATCHES * self.batch_size

        def encode(part: list[str]) -> np.ndarray:
            return np.asarray(
                self._encoder().encode(
                    part,
                    batch_size=self.batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                )
            )

        if len(windows) <= chunk:
            return encode(windows)
        parts = []
        with StepProgress("Embedding evidence windows", len(windows), transient=True) as progress:
            for start in range(0, len(windows), chunk):
                parts.append(encode(windows[start : start + chunk]))
                progress.advance(len(parts[-1]))
        return np.concatenate(parts)

    def _cache_namespace(self) -> str:
        """Vectors are only reused for the same encoder weights and the same windows."""
        folder = Path(resolve_base_model(self.base_model))
        weights = sorted(f"{f.name}:{f.stat().st_size}" for f in folder.glob("*.safetensors"))
        return f"{folder}|{weights}|{self.window_words}|{self.overlap_words}"

    def check_params(self) -> None:
        super().check_params()
        if not 0 <= self.overlap_words < self.window_words:
            raise ValueError(
                f"overlap_words ({self.overlap_words}) must be at least 0 and smaller than "
                f"window_words ({self.window_words})"
            )

    def text_features(self, texts: list[str], fitting: bool) -> np.ndarray:
        return self.embed(texts)

    def _save_state(self, folder: Path) -> None:
        # The encoder travels with the model, so serving never depends on the training machine.
        self._encoder().save(str(folder / "encoder"))
        joblib.dump(self.heads_, folder / "heads.joblib")
        if self.length_features:
            joblib.dump(self.length_, folder / "length.joblib")

    @classmethod
    def _load_state(cls, folder: Path, params: dict[str, Any]) -> Self:
        scorer = cls(**{**params, "base_model": str(folder / "encoder")})
        scorer.heads_ = joblib.load(folder / "heads.joblib")
        if scorer.length_features:
            scorer.length_ = joblib.load(folder / "length.joblib")
        return scorer
