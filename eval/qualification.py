"""Is a model good enough to score a criterion on its own? The ETS gates, per criterion.

Williamson, Xi & Breyer (2012): quadratic weighted kappa with the human score of at least
0.70, no more than 0.10 below human-human kappa on the same items, and a standardised mean
difference within 0.15. A minimum number of held-out items is added: a gate passed on a
handful of items proves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from prescore.eval.agreement import (
    adjacent_agreement,
    confusion,
    exact_agreement,
    pearson,
    quadratic_weighted_kappa,
    standardised_mean_difference,
)


class QualificationGates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_qwk: float = Field(0.70, ge=-1, le=1)
    max_degradation: float = Field(0.10, ge=0, description="human-human QWK minus machine QWK")
    max_abs_smd: float = Field(0.15, ge=0)
    min_items: int = Field(50, ge=1)


@dataclass
class CriterionAgreement:
    """Machine vs final human level, and human vs human where a second rater exists."""

    key: str
    items: int
    qwk: float
    exact: float
    adjacent: float
    pearson: float
    smd: float
    confusion: np.ndarray
    human_pairs: int = 0
    human_qwk: float = float("nan")
    human_exact: float = float("nan")
    machine_qwk_on_pairs: float = float("nan")  # on the items both humans scored
    qualified: bool = False
    failures: list[str] = field(default_factory=list)

    @property
    def degradation(self) -> float:
        """Machine QWK minus human-human QWK on the same items; negative means worse than humans."""
        return self.machine_qwk_on_pairs - self.human_qwk


def measure(
    key: str,
    machine: list[int],
    human: list[int],
    values: list[float],
    second_human: list[int] | None = None,
    first_human: list[int] | None = None,
) -> CriterionAgreement:
    """Agreement on one criterion; levels are indices into `values`, the scale's numbers.

    `second_human` holds the second rater's level per item, -1 where there is none, and
    `first_human` the first rater's. Human-human agreement is first rater against second (the
    final level is often their sum or an adjudication, which would flatter the humans); without
    `first_human` the final level stands in for the first rater.
    """
    levels = len(values)
    machine_values = [values[i] for i in machine]
    human_values = [values[i] for i in human]
    result = CriterionAgreement(
        key=key,
        items=len(human),
        qwk=quadratic_weighted_kappa(human, machine, levels),
        exact=exact_agreement(human, machine),
        adjacent=adjacent_agreement(human, machine),
        pearson=pearson(machine_values, human_values),
        smd=standardised_mean_difference(machine_values, human_values),
        confusion=confusion(human, machine, levels),
    )
    if second_human is not None:
        pairs = [i for i, level in enumerate(second_human) if level >= 0]
        if pairs:
            first = [(first_human or human)[i] for i in pairs]
            second = [second_human[i] for i in pairs]
            result.human_pairs = len(pairs)
            result.human_qwk = quadratic_weighted_kappa(first, second, levels)
            result.human_exact = exact_agreement(first, second)
            result.machine_qwk_on_pairs = quadratic_weighted_kappa(
                first, [machine[i] for i in pairs], levels
            )
    return result


def qualify(agreement: CriterionAgreement, gates: QualificationGates) -> CriterionAgreement:
    """Fill in the verdict and every gate that failed, in words a reviewer can read."""
    failures = []
    if agreement.items < gates.min_items:
        failures.append(f"only {agreement.items} held-out items (need {gates.min_items})")
    if not agreement.qwk >= gates.min_qwk:  # also catches NaN
        failures.append(f"QWK {agreement.qwk:.3f} < {gates.min_qwk:.2f}")
    if agreement.human_pairs and not agreement.degradation >= -gates.max_degradation:
        failures.append(
            f"QWK {agreement.degradation:+.3f} against human-human ({agreement.human_qwk:.3f}); "
            f"allowed -{gates.max_degradation:.2f}"
        )
    if not abs(agreement.smd) <= gates.max_abs_smd:
        failures.append(f"|SMD| {abs(agreement.smd):.3f} > {gates.max_abs_smd:.2f}")
    agreement.failures = failures
    agreement.qualified = not failures
    return agreement
