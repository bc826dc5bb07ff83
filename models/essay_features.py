"""What the strong CPU essay scorers read: word and character n-grams, and writing features.

Character 2-5-grams are the explicit form of the string kernels of Cozma, Butnaru & Ionescu
(2018): they see spelling, morphology and punctuation that word n-grams miss. Writing features
carry what TF-IDF rows cannot, since they are normalised: how much was written, how varied
its words and sentences are, and how many words the training evidence never used (a proxy for
misspellings without a dictionary). Each block is weighted, so one kernel ridge can weigh them
against each other (see models/essay.py).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Self

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

WORD = re.compile(r"[A-Za-z']+")
SENTENCE_END = re.compile(r"[.!?]+")
PUNCTUATION = re.compile(r"[,;:()\"-]")
LONG_WORD = 7  # letters; a usual cut for "long words" in readability formulas
WRITING_FEATURES = (
    "log words",
    "log distinct words",
    "log characters",
    "distinct / words (log)",
    "mean word length",
    "share of long words",
    "log sentences",
    "mean sentence words",
    "sentence words spread",
    "punctuation per word",
    "capitals per sentence",
    "share of words unknown to training",
    "log unknown words",
)


def word_list(text: str) -> list[str]:
    return WORD.findall(text.lower())


def writing_counts(text: str, vocabulary: frozenset[str]) -> list[float]:
    """One text's writing features, in WRITING_FEATURES order, unstandardised."""
    words = word_list(text)
    n = len(words)
    sentences = [s for s in SENTENCE_END.split(text) if WORD.search(s)]
    sentence_words = [len(WORD.findall(s)) for s in sentences] or [0]
    lengths = [len(w) for w in words] or [0]
    unknown = sum(w not in vocabulary for w in words)
    return [
        np.log1p(n),
        np.log1p(len(set(words))),
        np.log1p(len(text)),
        np.log1p(len(set(words))) / np.log1p(max(n, 1)) if n > 1 else 1.0,
        float(np.mean(lengths)),
        sum(length >= LONG_WORD for length in lengths) / max(n, 1),
        np.log1p(len(sentences)),
        float(np.mean(sentence_words)),
        float(np.std(sentence_words)),
        len(PUNCTUATION.findall(text)) / max(n, 1),
        sum(c.isupper() for c in text) / max(len(sentences), 1),
        unknown / max(n, 1),
        np.log1p(unknown),
    ]


class EssayFeatures:
    """Word and character TF-IDF, and standardised writing features, fitted on one
    criterion's training texts; `transform` returns (sparse block, dense block), each already
    weighted, so that the linear kernel of a row pair is the weighted sum of the blocks'."""

    def __init__(
        self,
        word_ngram_max: int = 2,
        char_ngram_range: tuple[int, int] = (2, 5),
        char_analyzer: str = "char_wb",
        max_char_features: int | None = 200_000,
        min_df: int = 2,
        word_weight: float = 1.0,
        char_weight: float = 1.0,
        writing_weight: float = 0.5,
    ) -> None:
        self.word_ngram_max = word_ngram_max
        self.char_ngram_range = char_ngram_range
        self.char_analyzer = char_analyzer  # scikit-learn's: "char_wb" inside words, "char" across
        self.max_char_features = max_char_features
        self.min_df = min_df
        self.word_weight = word_weight
        self.char_weight = char_weight
        self.writing_weight = writing_weight

    def fit(self, texts: list[str]) -> Self:
        self.fit_transform(texts)
        return self

    def fit_transform(self, texts: list[str]) -> tuple[sparse.csr_matrix, np.ndarray]:
        """Fit on the training texts and return their features, reading each text once."""
        min_df = min(self.min_df, len(texts))
        self.words_ = TfidfVectorizer(
            ngram_range=(1, self.word_ngram_max), min_df=min_df, sublinear_tf=True
        )
        self.chars_ = TfidfVectorizer(
            analyzer=self.char_analyzer,
            ngram_range=self.char_ngram_range,
            min_df=min_df,
            max_features=self.max_char_features,
            sublinear_tf=True,
        )
        words = self.words_.fit_transform(texts)
        chars = self.chars_.fit_transform(texts) if self.char_weight > 0 else None
        # words written at least twice in training: a misspelling is rarely repeated by others
        counts = Counter(w for text in texts for w in set(word_list(text)))
        self.vocabulary_ = frozenset(w for w, c in counts.items() if c >= 2)
        writing = self._writing(texts)
        self.writing_mean_ = writing.mean(axis=0)
        spread = writing.std(axis=0)
        self.writing_scale_ = np.where(spread > 0, spread, 1.0)
        return self._weighted(words, chars, writing)

    def _writing(self, texts: list[str]) -> np.ndarray:
        rows = [writing_counts(t, self.vocabulary_) for t in texts]
        return np.array(rows, dtype=float).reshape(len(texts), len(WRITING_FEATURES))

    def transform(self, texts: list[str]) -> tuple[sparse.csr_matrix, np.ndarray]:
        """(weighted word and character TF-IDF, weighted standardised writing features)."""
        chars = self.chars_.transform(texts) if self.char_weight > 0 else None
        return self._weighted(self.words_.transform(texts), chars, self._writing(texts))

    def _weighted(
        self, words: sparse.csr_matrix, chars: sparse.csr_matrix | None, writing: np.ndarray
    ) -> tuple[sparse.csr_matrix, np.ndarray]:
        blocks = [self.word_weight * words]
        if chars is not None:
            blocks.append(self.char_weight * chars)
        standard = (writing - self.writing_mean_) / self.writing_scale_
        # a few essays far outside the training range must not swing a linear model
        standard = np.clip(standard, -5, 5) * self.writing_weight / np.sqrt(len(WRITING_FEATURES))
        return sparse.hstack(blocks).tocsr(), standard
