"""What every scorer reads: a table of evidence with the criterion it is scored on."""

from __future__ import annotations

import numpy as np
import pandas as pd

from prescore.data.schema import KEY_SEPARATOR

INPUT_COLUMNS = ("text", "credential_id", "criterion_id")


def criterion_keys(frame: pd.DataFrame) -> np.ndarray:
    """One key per row naming its criterion: the text of its CriterionKey, built for a whole
    table at once."""
    credential, criterion = frame["credential_id"].astype(str), frame["criterion_id"].astype(str)
    return (credential + KEY_SEPARATOR + criterion).to_numpy()


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


def chunk_words(text: str, size: int, overlap: int) -> list[str]:
    """Overlapping windows of words, so long evidence is read whole by a fixed-window encoder."""
    words = text.split()
    if len(words) <= size:
        return [" ".join(words)]
    step = max(1, size - overlap)
    return [" ".join(words[i : i + size]) for i in range(0, max(1, len(words) - overlap), step)]
