"""The evidence domain as pydantic models: what crosses the boundary into prescore."""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
KEY_SEPARATOR = "/"  # between credential and criterion ids in a CriterionKey's text
LevelsAs = Literal["label", "value"]  # how a file writes its level cells


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


class Routing(StrEnum):
    """How a credential's decisions may go auto: `selective` (only those the model is certified
    sure of; qualified by the error among them), or `full` (the machine decides every
    submission; qualified by the Williamson gates over all of them)."""

    selective = "selective"
    full = "full"


class Split(StrEnum):
    train = "train"
    calibration = "calibration"
    test = "test"


class Level(BaseModel):
    """One step of a criterion's scale; `value` is what agreement statistics compute on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float
    label: Annotated[str, BeforeValidator(lambda v: _number_as_text(v))]
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

    @field_validator("met_level", mode="before")
    @classmethod
    def _met_level_is_a_level(cls, met_level: Any, info: ValidationInfo) -> Any:
        """A label as written; a number (`met_level: 3.0`) or other text is resolved like an
        evidence cell, and kept as the label of the level it names."""
        levels: tuple[Level, ...] | None = info.data.get("levels")
        if levels is None or not isinstance(met_level, str | int | float):
            return _number_as_text(met_level)  # the levels' own error, or a type error, says it
        scale = _Scale(levels)
        if isinstance(met_level, str) and (index := scale.by_label(met_level)) is not None:
            return levels[index].label  # quoted, it is a label, even on an ambiguous scale
        try:
            index = scale.index(met_level, None)
        except AmbiguousLevel as error:
            raise ValueError(
                f"met_level {met_level!r} is ambiguous: the label {error.as_label.label!r} "
                f"or the value {met_level} (label {error.as_value.label!r}); write the label, "
                f'quoted: met_level: "{error.as_label.label}" or "{error.as_value.label}"'
            ) from None
        if index is None:
            labels = [level.label for level in levels]
            values = [_format_number(level.value) for level in levels]
            written = f"labels {labels}, values {values}" if labels != values else f"{labels}"
            raise ValueError(f"met_level {met_level!r} is not one of the levels: {written}")
        return levels[index].label

    @property
    def labels(self) -> list[str]:
        return [level.label for level in self.levels]

    @property
    def values(self) -> list[float]:
        return [level.value for level in self.levels]

    @property
    def met_index(self) -> int:
        return self.labels.index(self.met_level)  # the validator made it a label

    def level_index(self, cell: object, levels_as: LevelsAs | None = None) -> int | None:
        """Position of the level a cell names, or None if it names none.

        `levels_as` says how the cell is written: `label` (a label; a number matches a label
        that is the same number, so 1.0 is the label "1"), `value` (a level's value), or None:
        either, where both readings agree. A cell that reads as one level's label and another
        level's value (a scale where label "1" is the best level and value 1 the worst) raises
        AmbiguousLevel rather than guess.
        """
        return _Scale(self.levels).index(cell, levels_as, self.id)


class AmbiguousLevel(ValueError):
    """A level cell that names one level as a label and another as a value."""

    def __init__(self, cell: object, criterion_id: str, as_label: Level, as_value: Level) -> None:
        self.cell = cell
        self.as_label = as_label
        self.as_value = as_value
        where = f" of {criterion_id!r}" if criterion_id else ""
        super().__init__(
            f"level {cell!r} is ambiguous on the rubric{where}: as a label it is "
            f"{as_label.label!r} (value {_format_number(as_label.value)}), as a value it is "
            f"{as_value.label!r}; say how the file writes levels with `levels_as: label` or "
            "`levels_as: value` in the config's data block (or `--levels-as` on "
            "`prescore data check`)"
        )


class _Scale:
    """Reading level cells against a scale, the one rule for evidence and rubric files."""

    def __init__(self, levels: tuple[Level, ...]) -> None:
        self.levels = levels

    def by_label(self, cell: object) -> int | None:
        text = _cell_text(cell)
        if text is None:
            return None
        for index, level in enumerate(self.levels):
            if text == level.label:
                return index
        number = _as_number(text)
        if number is None:
            return None
        for index, level in enumerate(self.levels):
            label_number = _as_number(level.label)
            if label_number is not None and math.isclose(number, label_number, abs_tol=1e-9):
                return index
        return None

    def by_value(self, cell: object) -> int | None:
        number = _as_number(_cell_text(cell))
        if number is None:
            return None
        for index, level in enumerate(self.levels):
            if math.isclose(number, level.value, abs_tol=1e-9):
                return index
        return None

    def index(self, cell: object, levels_as: LevelsAs | None, criterion_id: str = "") -> int | None:
        as_label = self.by_label(cell) if levels_as != "value" else None
        as_value = self.by_value(cell) if levels_as != "label" else None
        if as_label is not None and as_value is not None and as_label != as_value:
            raise AmbiguousLevel(cell, criterion_id, self.levels[as_label], self.levels[as_value])
        return as_label if as_label is not None else as_value


def _cell_text(cell: object) -> str | None:
    if cell is None or isinstance(cell, bool):
        return None
    return str(cell).strip()


def _as_number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


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
    routing: Routing = Routing.selective

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


def _number_as_text(value: Any) -> Any:
    # A label written as a bare number in YAML (`label: 1`) is still the label "1".
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _format_number(value)
    return value
