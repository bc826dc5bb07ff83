"""Assign evidence to train / calibration / test by educator, so no author is on two sides."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prescore.data.schema import EvidenceItem, Split


class SplitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train: float = Field(0.7, ge=0, le=1)
    calibration: float = Field(0.15, ge=0, le=1)
    test: float = Field(0.15, ge=0, le=1)
    seed: int = 13

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.calibration + self.test
        if abs(total - 1) > 1e-6:
            raise ValueError(f"split fractions must add up to 1, they add up to {total:g}")
        return self


def educator_position(educator_id: str, seed: int) -> float:
    """A fixed point in [0, 1) per educator and seed: splits and folds cut this line."""
    digest = hashlib.sha256(f"{seed}:{educator_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def educator_split(educator_id: str, config: SplitConfig) -> Split:
    """The split of one educator, from a seeded hash of the id.

    A hash rather than a shuffle keeps every educator's side fixed when new educators are
    added to the data, so a re-train never moves yesterday's test authors into training.
    """
    position = educator_position(educator_id, config.seed)
    if position < config.train:
        return Split.train
    if position < config.train + config.calibration:
        return Split.calibration
    return Split.test


def assign_splits(
    items: list[EvidenceItem], config: SplitConfig
) -> dict[Split, list[EvidenceItem]]:
    """Items grouped by split; an item's own `split` (e.g. a benchmark's test set) wins."""
    splits: dict[Split, list[EvidenceItem]] = {split: [] for split in Split}
    for item in items:
        splits[item.split or educator_split(item.educator_id, config)].append(item)
    return splits


def educators_on_several_sides(splits: dict[Split, list[EvidenceItem]]) -> set[str]:
    """Educators found in more than one split: only possible through explicit `split` values."""
    sides: dict[str, set[Split]] = {}
    for split, items in splits.items():
        for item in items:
            sides.setdefault(item.educator_id, set()).add(split)
    return {educator for educator, found in sides.items() if len(found) > 1}
