"""A tiny fine-tuned transformer shared by the tests of how it encodes (traced, bf16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from prescore.models.transformer import TransformerScorer
from tests.conftest import scoring_frame


@pytest.fixture(scope="package")
def fitted(tiny_encoder: Path) -> TransformerScorer:
    """One epoch on 60 rows; a module that needs another fit defines its own `fitted`."""
    X, y = scoring_frame(60)
    scorer = TransformerScorer(
        base_model=str(tiny_encoder), max_length=32, stride=8,
        training_args={"num_train_epochs": 1, "per_device_train_batch_size": 8},
        seed=3,
    )  # fmt: skip
    return scorer.fit(X, y)
