"""Does the base model read the evidence's language? Measured with its own tokenizer.

An encoder trained on English splits Czech, Russian or Greek words into many small pieces
(or, where it lacks the characters, into [UNK]): it still returns vectors, but they say little.
The measure is the share of the evidence's words that the base model's tokenizer does not
hold whole or nearly whole: a word counts when it is unknown (any [UNK] piece) or split into
FRAGMENTED_PIECES or more pieces. (Counting [UNK] alone misses what matters: WordPiece
splits an unfamiliar word into known letters rather than give up on it.) On all-MiniLM-L6-v2's
English WordPiece the bundled English sample scores under 1%, Czech and German prose about
45%, Russian over 80%. Above WARN_SHARE, training, the
evaluation report and the model card (`GET /credentials`) warn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

FRAGMENTED_PIECES = 3  # a word in this many pieces or more is one the vocabulary does not know
WARN_SHARE = 0.2  # share of such words above which the base model does not fit the language
SAMPLE_TEXTS = 500  # texts measured; the share settles long before


class LanguageFit(BaseModel):
    """How well the base model's tokenizer covers the evidence it was trained on."""

    words: int
    unknown_share: float  # words with an [UNK] piece
    fragmented_share: float  # words in FRAGMENTED_PIECES or more pieces, [UNK] aside
    threshold: float = WARN_SHARE

    @property
    def unfamiliar_share(self) -> float:
        return self.unknown_share + self.fragmented_share

    @property
    def warning(self) -> str | None:
        if self.unfamiliar_share <= self.threshold:
            return None
        return (
            f"{self.unfamiliar_share:.0%} of the evidence's words are unknown to the base model's "
            f"tokenizer or split into {FRAGMENTED_PIECES}+ pieces (above {self.threshold:.0%}): "
            "the evidence's language or script does not look like the base model's; use a base "
            "model trained on that language (base_model: a saved multilingual model's folder)"
        )


def language_fit(texts: Sequence[str], tokenizer: Any) -> LanguageFit:
    """The share of words of (a sample of) `texts` that `tokenizer` does not know."""
    sample = list(dict.fromkeys(texts))[:SAMPLE_TEXTS]
    unknown_id = tokenizer.unk_token_id
    words = unknown = fragmented = 0
    for text in sample:
        encoding = tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        pieces: dict[int, list[int]] = {}
        for token, word in zip(encoding["input_ids"], encoding.word_ids(), strict=True):
            if word is not None:
                pieces.setdefault(word, []).append(token)
        for word, ids in pieces.items():
            start, end = encoding.word_to_chars(word)
            if not any(c.isalpha() for c in text[start:end]):
                continue  # punctuation and numbers say nothing about the language
            words += 1
            if unknown_id in ids:
                unknown += 1
            elif len(ids) >= FRAGMENTED_PIECES:
                fragmented += 1
    return LanguageFit(
        words=words,
        unknown_share=unknown / words if words else 0.0,
        fragmented_share=fragmented / words if words else 0.0,
    )
