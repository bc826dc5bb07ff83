"""What every scorer reads: a table of evidence with the criterion it is scored on."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from prescore.data.schema import KEY_SEPARATOR

INPUT_COLUMNS = ("text", "credential_id", "criterion_id")


def words(text: str) -> int:
    """Whitespace-separated words: a lower bound on a subword tokenizer's count (every word is
    at least one token), so the API can refuse an oversized request without the tokenizer.
    str.split counts what a regex of runs of non-space did, on every code point, at a seventh of
    the CPU (12 against 85 us for 300 words): it runs on the event loop for every request."""
    return len(text.split())


def count_tokens(texts: Sequence[str], tokenizer: Any | None) -> list[int]:
    """Tokens per text as a scorer reads them: its base model's tokenizer, without special
    tokens; words for a scorer without one (TF-IDF reads words)."""
    if tokenizer is None:
        return [words(text) for text in texts]
    encoded = tokenizer(
        list(texts),
        add_special_tokens=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )
    return [len(ids) for ids in encoded["input_ids"]]


def criterion_keys(frame: pd.DataFrame) -> np.ndarray:
    """One key per row naming its criterion: the text of its CriterionKey. Built in Python:
    pandas' string columns took 0.23 ms for a served request's one row, twice per model call,
    and held the GIL the other model thread and the HTTP stack wait for."""
    pairs = zip(frame["credential_id"], frame["criterion_id"], strict=True)
    return np.array(
        [f"{credential}{KEY_SEPARATOR}{criterion}" for credential, criterion in pairs], dtype=object
    )


def levels_per_criterion(frame: pd.DataFrame) -> dict[str, int]:
    """Number of levels of each criterion, from the `num_levels` column the loader adds."""
    if "num_levels" not in frame:
        raise ValueError("fit needs a `num_levels` column: the size of each row's rubric scale")
    keys = criterion_keys(frame)
    return {str(k): int(n) for k, n in zip(keys, frame["num_levels"], strict=True)}


def unknown_criteria(frame: pd.DataFrame, known: dict[str, int]) -> list[str]:
    return sorted(set(criterion_keys(frame)) - set(known))


def pad_probabilities(rows: list[np.ndarray], width: int) -> np.ndarray:
    """Stack per-item level probabilities of different scale sizes, zero beyond each scale."""
    out = np.zeros((len(rows), width))
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def token_windows(text: str, tokenizer: Any, size: int, overlap: int) -> list[str]:
    """Overlapping windows of at most `size` tokens of `tokenizer` (a fast Hugging Face one),
    so every token of long evidence lies in some window and no window is cut by the encoder.

    Windows start and end on word boundaries (the tokenizer's own pre-tokenized words), so a
    window re-tokenizes to exactly its tokens; only a single word longer than a whole window
    is split inside, between its pieces. Consecutive windows share about `overlap` tokens.
    """
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets, words = encoding["offset_mapping"], encoding.word_ids()
    total = len(offsets)
    if total <= size:
        return [" ".join(text.split())]
    starts = [i for i in range(total) if i == 0 or words[i] != words[i - 1]]
    windows, start = [], 0
    while True:
        end = min(start + size, total)
        if end < total:  # end before the word that would not fit whole, if one starts inside
            last = starts[bisect.bisect_right(starts, end) - 1]
            end = last if last > start else end
        windows.append(text[offsets[start][0] : offsets[end - 1][1]])
        if end >= total:
            return windows
        # the next window begins at the first word start at least `overlap` tokens back
        back = max(start + 1, end - overlap)
        first = bisect.bisect_left(starts, back)
        start = starts[first] if first < len(starts) and starts[first] <= end else end
