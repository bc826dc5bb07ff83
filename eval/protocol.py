"""Which held-out rows each fit may use, so that a guarantee is tested on rows its score was
fixed before.

The calibration split does two kinds of work. Fits that shape the score: model selection (the
transformer's best epoch, the ensemble's weights), temperatures and the Platt recalibration of
P(earned). And the certification of what the score promises: Learn-then-Test thresholds and
conformal sets, valid only for a score fixed before the rows they are tested on.

- `split`: a seeded hash of the educator sends `certification_share` of the calibration
  educators to certification; the rest select the model and fit temperatures and Platt. What is
  served is exactly what was certified.
- `crossfit`: the rows that selected no model (all of them for a scorer that selects nothing)
  certify, each scored with temperatures and Platt fitted on the other folds; the served fits
  use every calibration row. More rows certify; what is served differs from what was certified
  by a refit on a few more rows.

Model selection always uses the selection rows only (`selection_rows`), under either protocol.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

CROSSFIT_FOLDS = 5


Protocol = Literal["split", "crossfit"]


def certification_position(educator_id: str) -> float:
    """A fixed point in [0, 1) per educator, apart from the split's own hash (whose calibration
    educators all lie in one narrow band of that line)."""
    digest = hashlib.sha256(f"certification:{educator_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def selection_rows(educators: Sequence[str], certification_share: float) -> np.ndarray:
    """The calibration rows that may select a model: those not held for certification."""
    return np.array(
        [certification_position(str(e)) >= certification_share for e in educators], dtype=bool
    )


@dataclass(frozen=True)
class CalibrationPlan:
    """Over the calibration rows: `served` fit the temperatures and Platt that serving uses;
    each fold is (rows it certifies, rows its fits may use)."""

    served: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]

    @property
    def certify(self) -> np.ndarray:
        out = np.zeros(len(self.served), dtype=bool)
        for rows, _ in self.folds:
            out |= rows
        return out


def calibration_plan(
    educators: Sequence[str], protocol: Protocol, certification_share: float, selects: bool
) -> CalibrationPlan:
    """The plan for one calibration split; `selects`: the scorer chose something on the
    selection rows (they may then certify nothing)."""
    n = len(educators)
    selection = selection_rows(educators, certification_share)
    if protocol == "split":
        return CalibrationPlan(served=selection, folds=[(~selection, selection)])
    pool = ~selection if selects else np.ones(n, dtype=bool)
    fold = np.array(
        [int(CROSSFIT_FOLDS * certification_position(f"fold:{e}")) for e in educators], dtype=int
    )
    folds = [(pool & (fold == k), fold != k) for k in range(CROSSFIT_FOLDS)]
    return CalibrationPlan(served=np.ones(n, dtype=bool), folds=[f for f in folds if f[0].any()])
