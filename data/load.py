"""Load scored evidence into one table per split: validate, respect consent, dedupe, split.

Every consumer (fitting, evaluation, benchmarks, the CLI's summaries) reads the same pandas
table, one row per evidence item and criterion (see EVIDENCE_COLUMNS); nothing converts it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from prescore import defaults
from prescore.data.adapters import ADAPTERS, adapt
from prescore.data.dedupe import DedupeResult, drop_duplicates
from prescore.data.problems import InputError, Problem
from prescore.data.readers import read_records
from prescore.data.rubrics import load_rubrics
from prescore.data.schema import Credential, EvidenceItem, LevelsAs, RaterKind, Split
from prescore.data.split import SplitConfig, assign_splits, educators_on_several_sides
from prescore.data.validate import ValidationLimits, validate_records


class DataSource(BaseModel):
    """Where scored evidence comes from and how to split it; the `data:` block of a config."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(
        description="evidence file, or the public set's folder when an adapter reads it"
    )
    adapter: str | None = Field(
        default=None,
        description=f"reader for a foreign layout, one of {sorted(ADAPTERS)}; omit for the schema",
    )
    rubrics: Path | None = Field(
        default=None,
        description="rubric file or folder; default: rubrics/ beside the evidence file",
    )
    levels_as: LevelsAs | None = Field(
        default=None,
        description="level cells are labels or values; default: either, where no cell could "
        "be read both ways with different results",
    )
    split: SplitConfig = Field(default_factory=SplitConfig)
    max_text_chars: int = Field(defaults.MAX_TEXT_CHARS_CEILING, gt=0)
    dedupe: bool = Field(
        True, description="drop exact and near-exact repeats; off for benchmarks' fixed test sets"
    )
    final_level_kinds: list[RaterKind] | None = Field(
        default=None,
        min_length=1,
        description="keep only items whose final level is by one of these rater kinds, e.g. "
        "[expert]: an item counts as an expert's when an expert scored it, as peers' when only "
        "peers did; items without rater scores are left out too. Default: every item",
    )


@dataclass(frozen=True)
class LoadReport:
    """What happened to the records on the way in: nothing is dropped without being counted."""

    source: str
    records: int
    without_consent: int
    exact_duplicates: int
    near_duplicates: int
    educators_on_several_sides: int
    ignored_columns: list[str] = field(default_factory=list)
    # items per kind of their final level (expert / peer / unknown), before any kind filter
    final_level_kinds: dict[str, int] = field(default_factory=dict)
    left_out_by_kind: int = 0  # by `final_level_kinds`


@dataclass(frozen=True)
class EvidenceSet:
    credentials: dict[str, Credential]
    splits: dict[str, pd.DataFrame]  # "train", "calibration", "test": EVIDENCE_COLUMNS + groups
    report: LoadReport


def read_source(source: DataSource) -> tuple[dict[str, Credential], list[EvidenceItem], list[str]]:
    """Validated evidence items of a source, or InputError with every problem found."""
    if source.adapter is not None:
        if source.adapter not in ADAPTERS:
            message = f"unknown adapter {source.adapter!r}; choose one of {sorted(ADAPTERS)}"
            raise InputError([Problem(str(source.path), None, "adapter", message)])
        credentials, records = adapt(source.adapter, source.path)
        read_problems: list[Problem] = []
    else:
        credentials = load_rubrics(source.rubrics or default_rubrics_path(source.path))
        records, read_problems = read_records(source.path)
    limits = ValidationLimits(max_text_chars=source.max_text_chars, levels_as=source.levels_as)
    result = validate_records(records, credentials, str(source.path), limits)
    problems = read_problems + result.problems
    if problems:
        raise InputError(problems)
    return credentials, result.items, result.ignored_columns


def final_level_kind(item: EvidenceItem) -> str:
    """Whose level an item's final level is: `expert` where an expert scored it (in reviewed
    exports the expert's verdict is the final one), `peer` where only peers did, `unknown`
    without rater scores."""
    kinds = {score.rater_kind for score in item.scores}
    if RaterKind.expert in kinds:
        return RaterKind.expert.value
    return RaterKind.peer.value if kinds else "unknown"


def default_rubrics_path(evidence_path: Path) -> Path:
    return evidence_path.parent / "rubrics"


def load_evidence(source: DataSource) -> EvidenceSet:
    """The training-ready evidence of a source, split by educator."""
    credentials, items, ignored = read_source(source)
    consented = [item for item in items if item.consent_to_train]
    kinds = Counter(final_level_kind(item) for item in consented)
    if source.final_level_kinds is not None:
        wanted = {kind.value for kind in source.final_level_kinds}
        kept = [item for item in consented if final_level_kind(item) in wanted]
    else:
        kept = consented
    deduped = drop_duplicates(kept) if source.dedupe else DedupeResult(kept, 0, 0)
    splits = assign_splits(deduped.kept, source.split)
    group_names = sorted({name for item in deduped.kept for name in item.groups})
    tables = {split.value: to_frame(splits[split], credentials, group_names) for split in Split}
    report = LoadReport(
        source=str(source.path),
        records=len(items),
        without_consent=len(items) - len(consented),
        exact_duplicates=deduped.exact,
        near_duplicates=deduped.near_exact,
        educators_on_several_sides=len(educators_on_several_sides(splits)),
        ignored_columns=ignored,
        final_level_kinds=dict(sorted(kinds.items())),
        left_out_by_kind=len(consented) - len(kept),
    )
    return EvidenceSet(credentials=credentials, splits=tables, report=report)


EVIDENCE_COLUMNS = (
    "id",
    "submission_id",
    "educator_id",
    "credential_id",
    "criterion_id",
    "evidence_type",
    "text",
    "label",  # index of the final level; -1 when unscored
    "num_levels",
    "scores",  # each rater's {rater_id, rater_kind, level (an index)}, in rater order
    "fold",  # a benchmark's predefined fold; -1 when none
)  # then one `group_<name>` column per group field found in the source


def to_frame(
    items: list[EvidenceItem], credentials: dict[str, Credential], group_names: list[str]
) -> pd.DataFrame:
    """One split's table: a row per item, positions 0..n-1 as its index."""
    columns = [*EVIDENCE_COLUMNS, *(f"group_{name}" for name in group_names)]
    rows = [
        {
            "id": item.id,
            "submission_id": item.submission_id,
            "educator_id": item.educator_id,
            "credential_id": item.credential_id,
            "criterion_id": item.criterion_id,
            "evidence_type": item.evidence_type,
            "text": item.text,
            "label": -1 if item.final_level is None else item.final_level,
            "num_levels": _num_levels(credentials, item),
            "scores": [
                {"rater_id": s.rater_id, "rater_kind": s.rater_kind.value, "level": s.level}
                for s in item.scores
            ],
            "fold": -1 if item.fold is None else item.fold,
            **{f"group_{name}": item.groups.get(name) for name in group_names},
        }
        for item in items
    ]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({"label": "int64", "num_levels": "int64", "fold": "int64"})


def _num_levels(credentials: dict[str, Credential], item: EvidenceItem) -> int:
    criterion = credentials[item.credential_id].criterion(item.criterion_id)
    assert criterion is not None  # validated
    return len(criterion.levels)
