"""Frozen sentence-transformers embeddings and one head per criterion (ridge or logistic).

Long evidence is embedded in overlapping windows, counted in tokens of the encoder's own
tokenizer so that none is longer than the encoder reads, and the window embeddings averaged:
a lesson plan is read whole rather than cut at the encoder's window, in any language.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import joblib
import numpy as np

from prescore.models.base_model import BUNDLED, resolve_base_model
from prescore.models.embedding_cache import EmbeddingCache
from prescore.models.heads import HeadsScorer
from prescore.models.inputs import token_windows
from prescore.progress import StepProgress

PROGRESS_CHUNK_BATCHES = 32  # batches per progress step


class EmbeddingScorer(HeadsScorer):
    kind = "embeddings"

    def __init__(
        self,
        base_model: str = BUNDLED,
        window_tokens: int | None = None,
        overlap_tokens: int = 32,
        head: str = "ridge",
        alpha: float | None = None,
        batch_size: int = 32,
        cache_dir: str | None = None,
        length_features: bool = False,
    ) -> None:
        self.base_model = base_model
        # None: the encoder's limit less its special tokens ([CLS], [SEP]), the widest window
        # that is never cut
        self.window_tokens = window_tokens
        self.overlap_tokens = overlap_tokens
        self.head = head  # "ridge" (ordinal) or "logistic"; see models/heads.py
        self.alpha = alpha  # None: chosen per criterion (see models/heads.py)
        self.length_features = length_features  # see models/length.py
        self.batch_size = batch_size
        # where text vectors are kept between fits (benchmark folds); None: nowhere
        self.cache_dir = cache_dir

    @property
    def runtime(self) -> str:
        return "torch-fp32"  # sentence-transformers; the ridge or logistic heads in scikit-learn

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
        windows = [self.windows(t) for t in missing]
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

    def window_limit(self) -> int:
        """The most tokens of text one window may hold: the encoder's max_seq_length less the
        special tokens its tokenizer adds."""
        encoder = self._encoder()
        return int(encoder.max_seq_length) - encoder.tokenizer.num_special_tokens_to_add()

    def windows(self, text: str) -> list[str]:
        """The windows one text is embedded in; together they hold every token of it."""
        limit = self.window_limit()
        size = limit if self.window_tokens is None else self.window_tokens
        if size > limit:
            raise ValueError(
                f"window_tokens ({size}) exceeds what the encoder reads ({limit} tokens besides "
                "its special tokens): the encoder would cut every window; leave it unset"
            )
        return token_windows(
            text, self._encoder().tokenizer, size, min(self.overlap_tokens, size - 1)
        )

    def base_tokenizer(self) -> Any:
        return self._encoder().tokenizer

    def _cache_namespace(self) -> str:
        """Vectors are only reused for the same encoder weights and the same windows (token
        windows; the encoder's limit, when window_tokens is unset, follows its weights)."""
        folder = Path(resolve_base_model(self.base_model))
        weights = sorted(f"{f.name}:{f.stat().st_size}" for f in folder.glob("*.safetensors"))
        window = "encoder-limit" if self.window_tokens is None else self.window_tokens
        return f"{folder}|{weights}|tokens:{window}|overlap:{self.overlap_tokens}"

    def check_params(self) -> None:
        super().check_params()
        if self.window_tokens is not None and self.window_tokens < 2:
            raise ValueError(f"window_tokens ({self.window_tokens}) must be at least 2")
        if not 0 <= self.overlap_tokens < (self.window_tokens or 10**9):
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be at least 0 and smaller than "
                f"window_tokens ({self.window_tokens})"
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
        # versions saved before windows were counted in tokens named them in words
        params = {k: v for k, v in params.items() if k not in ("window_words", "overlap_words")}
        scorer = cls(**{**params, "base_model": str(folder / "encoder")})
        scorer.heads_ = joblib.load(folder / "heads.joblib")
        if scorer.length_features:
            scorer.length_ = joblib.load(folder / "length.joblib")
        return scorer
