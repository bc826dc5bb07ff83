"""Does a text look like the evidence the model learned from? Length, words, language.

Rather than a language-identification model, the profile keeps the words many educators
used in training and asks what share of a new text's words are among them: another
language, pasted noise or a table of numbers all score low, and the check needs no model.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
from pydantic import BaseModel, ConfigDict

WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
VOCABULARY_SIZE = 3000
MIN_EDUCATORS_PER_WORD = 5  # a word must come from several authors: no names, no one-offs


def words(text: str) -> list[str]:
    return [w.casefold() for w in WORD.findall(text)]


class InputProfile(BaseModel):
    """Limits learned from the training texts of one model."""

    model_config = ConfigDict(extra="forbid")

    min_chars: int
    max_chars: int
    min_known_word_share: float
    vocabulary: list[str]

    def problems(self, text: str) -> list[str]:
        """Reasons this text is outside what the model has seen; empty when it looks fine."""
        stripped = text.strip()
        if not stripped:
            return ["input_empty"]
        reasons = []
        if len(stripped) < self.min_chars:
            reasons.append("input_too_short")
        if len(stripped) > self.max_chars:
            reasons.append("input_too_long")
        tokens = words(stripped)
        if not tokens or known_word_share(tokens, set(self.vocabulary)) < self.min_known_word_share:
            reasons.append("input_unfamiliar_language_or_noise")
        return reasons


def known_word_share(tokens: list[str], vocabulary: set[str]) -> float:
    return sum(t in vocabulary for t in tokens) / len(tokens) if tokens else 0.0


def fit_input_profile(texts: list[str], educators: list[str]) -> InputProfile:
    """Limits at the edges of the training distribution, with room to spare."""
    lengths = np.array([len(t.strip()) for t in texts])
    authors: dict[str, set[str]] = {}
    counts: Counter[str] = Counter()
    for text, educator in zip(texts, educators, strict=True):
        for word in set(words(text)):
            authors.setdefault(word, set()).add(educator)
            counts[word] += 1
    shared = [w for w, _ in counts.most_common() if len(authors[w]) >= MIN_EDUCATORS_PER_WORD]
    vocabulary = sorted(shared[:VOCABULARY_SIZE])
    known = set(vocabulary)
    shares = np.array([known_word_share(words(t), known) for t in texts])
    return InputProfile(
        min_chars=max(1, int(np.quantile(lengths, 0.005) * 0.5)),
        max_chars=int(np.quantile(lengths, 0.995) * 2),
        min_known_word_share=float(np.quantile(shares, 0.005) * 0.8) if len(shares) else 0.0,
        vocabulary=vocabulary,
    )
