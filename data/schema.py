"""The evidence domain as pydantic models: what crosses the boundary into prescore."""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
KEY_SEPARATOR = "/"  # between credential and criterion ids in a CriterionKey's text


class CriterionKey(NamedTuple):
    """One criterion of one credential: the key that scorers, policies and reports share.

    Written as text 'credential/criterion' where a plain string is needed (JSON keys, MLflow
    metric names); ids never hold a '/' (SLUG_PATTERN), so the text splits back unambiguously.
    """

    credential_id: str
    criterion_id: str

    def __str__(self) -> str:
        return f"{self.credential_id}{KEY_SEPARATOR}{self.criterion_id}"

    @classmethod
    def parse(cls, text: str) -> CriterionKey:
        credential_id, criterion_id = text.split(KEY_SEPARATOR, 1)
        return cls(credential_id, criterion_id)


class Stakes(StrEnum):
    low = "low"
    high = "high"


class RaterKind(StrEnum):
    expert = "expert"
    peer = "peer"


class Split(StrEnum):
    train = "train"
    calibration = "calibration"
    test = "test"


class Level(BaseModel):
    """One step of a criterion's scale; `value` is what agreement statistics compute on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float
    label: str
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _from_scalar(cls, data: Any) -> Any:
        # Rubric files may list plain numbers: `levels: [1, 2, 3]`.
        if isinstance(data, int | float) and not isinstance(data, bool):
            return {"value": data, "label": _format_number(data)}
        return data


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=SLUG_PATTERN)
    title: str
    description: str = ""
    levels: tuple[Level, ...] = Field(min_length=2)
    met_level: str = Field(description="label of the lowest level that counts as met")

    @field_validator("levels")
    @classmethod
    def _ordered_and_unique(cls, levels: tuple[Level, ...]) -> tuple[Level, ...]:
        values = [level.value for level in levels]
        if any(b <= a for a, b in zip(values, values[1:], strict=False)):
            raise ValueError(f"level values must increase from lowest to highest, got {values}")
        labels = [level.label for level in levels]
        if len(set(labels)) != len(labels):
            raise ValueError(f"level labels must be unique, got {labels}")
        return levels

    @model_validator(mode="after")
    def _met_level_exists(self) -> Criterion:
        if self.level_index(self.met_level) is None:
            raise ValueError(f"met_level {self.met_level!r} is not one of the levels {self.labels}")
        return self

    @property
    def labels(self) -> list[str]:
        return [level.label for level in self.levels]

    @property
    def values(self) -> list[float]:
        return [level.value for level in self.levels]

    @property
    def met_index(self) -> int:
        index = self.level_index(self.met_level)
        assert index is not None  # guaranteed by the validator
        return index

    def level_index(self, cell: object) -> int | None:
        """Position of a level given as its label or its numeric value; None if not a level."""
        if cell is None or isinstance(cell, bool):
            return None
        text = str(cell).strip()
        for index, level in enumerate(self.levels):
            if text == level.label:
                return index
        try:
            number = float(text)
        except ValueError:
            return None
        for index, level in enumerate(self.levels):
            if math.isclose(number, level.value, abs_tol=1e-9):
                return index
        return None


class AwardRule(BaseModel):
    """How criteria add up to the credential, which one cannot half-earn.

    `all_met` (the default): every criterion at or above its met level. `at_least`: at least
    `count` criteria met. A rubric file writes `award: all_met`, `award: {at_least: 2}`, or
    `award: {rule: at_least, count: 2}`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Literal["all_met", "at_least"] = "all_met"
    count: int | None = Field(None, ge=1, description="with at_least: how many criteria")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"rule": data}
        if isinstance(data, dict) and set(data) == {"at_least"}:
            return {"rule": "at_least", "count": data["at_least"]}
        return data

    @model_validator(mode="after")
    def _count_fits_rule(self) -> AwardRule:
        if self.rule == "at_least" and self.count is None:
            raise ValueError("award rule at_least needs a count, e.g. award: {at_least: 2}")
        if self.rule == "all_met" and self.count is not None:
            raise ValueError("award rule all_met takes no count; use award: {at_least: N}")
        return self

    def required(self, criteria: int) -> int:
        """How many of a rubric's `criteria` must be met to earn the credential."""
        return criteria if self.count is None else self.count

    def earned(self, met: Sequence[bool], criteria: int) -> bool:
        return sum(bool(m) for m in met) >= self.required(criteria)


class Credential(BaseModel):
    """One competency with its rubric; read from one YAML or JSON file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=SLUG_PATTERN)
    title: str
    stakes: Stakes
    description: str = ""
    criteria: tuple[Criterion, ...] = Field(min_length=1)
    award: AwardRule = Field(default_factory=AwardRule)

    @model_validator(mode="after")
    def _award_is_reachable(self) -> Credential:
        needed = self.award.required(len(self.criteria))
        if needed > len(self.criteria):
            raise ValueError(
                f"award rule at_least {needed} cannot be met: the rubric has "
                f"{len(self.criteria)} criteria"
            )
        return self

    @field_validator("criteria")
    @classmethod
    def _unique_criteria(cls, criteria: tuple[Criterion, ...]) -> tuple[Criterion, ...]:
        ids = [criterion.id for criterion in criteria]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"criterion ids must be unique, repeated: {duplicated}")
        return criteria

    def criterion(self, criterion_id: str) -> Criterion | None:
        return next((c for c in self.criteria if c.id == criterion_id), None)


class Score(BaseModel):
    """One rater's level for one evidence item; `level` is the index into the criterion's levels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rater_id: str
    rater_kind: RaterKind
    level: int


class EvidenceItem(BaseModel):
    """A validated evidence item for one criterion, levels resolved to indices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    educator_id: str
    credential_id: str
    criterion_id: str
    evidence_type: str
    text: str
    consent_to_train: bool
    submission_id: str | None = None
    final_level: int | None = Field(
        default=None, description="index of the adjudicated final level; the training target"
    )
    scores: tuple[Score, ...] = ()
    groups: dict[str, str] = Field(default_factory=dict)
    split: Split | None = None
    fold: int | None = None


def _format_number(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)
