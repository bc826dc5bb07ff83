"""Benchmarks on the public sets with their standard protocols: accuracy, triage and speed.

Each fold is fitted and measured by the same code a training run uses (fit_scorer, evaluate),
so a benchmark number and a run's number mean the same thing. A fold's result is a small JSON
record; tables are made from any set of them, so folds can run in parallel (or on a lent GPU)
and be merged afterwards.

Protocols:
- asap-aes: the five folds of folds.csv; QWK per essay set averaged over folds.
Human-human agreement is rater 1 against rater 2 on every double-scored item of the set.
- feedback-prize-ell: five folds by essay (a seeded hash); MCRMSE and QWK per criterion.
- asap-sas, asap-plusplus: the fixed split the data defines.
- files in the evidence schema: their `fold` column where every row has one, else their split.
Within a fold, 15% of the training educators are held back as the calibration split: some of
its educators fit the temperatures and recalibration, the others certify the routing
thresholds (eval/protocol.py); triage is then confirmed and measured on the test fold.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from prescore.data.load import EvidenceSet, load_evidence
from prescore.data.split import SplitConfig, educator_position, educator_split
from prescore.eval.agreement import quadratic_weighted_kappa
from prescore.eval.evaluate import evaluate
from prescore.models.base_model import BUNDLED
from prescore.models.ensemble import EnsembleScorer
from prescore.models.hardware import cpu_description
from prescore.models.inputs import criterion_keys
from prescore.models.scorer import Scorer
from prescore.training.config import ExperimentConfig, ScorerSpec
from prescore.training.fit import build_scorer, calibration_set, fit_scorer

HASH_FOLDED = {"feedback-prize-ell"}  # no published folds: five by essay, from a seeded hash
NUM_FOLDS = 5
CALIBRATION_SHARE = 0.15
BASELINE = ScorerSpec(kind="tfidf")
WITH_LENGTH = ScorerSpec(kind="tfidf", params={"length_features": True})
ESSAY = ScorerSpec(kind="essay")  # the CPU scorer that wins (models/essay.py)


def essay_with_embeddings(cache_dir: Path, base_model: str = BUNDLED) -> ScorerSpec:
    """The essay scorer with a frozen encoder's vectors among its features, cached as the
    embeddings baseline's."""
    return ScorerSpec(kind="essay", params={"embeddings": base_model, "cache_dir": str(cache_dir)})


def embeddings_baseline(cache_dir: Path, base_model: str = BUNDLED) -> ScorerSpec:
    """Frozen encoder (the bundled MiniLM unless named) + ordinal heads; vectors cached so each
    fold encodes nothing new."""
    return ScorerSpec(
        kind="embeddings", params={"cache_dir": str(cache_dir), "base_model": base_model}
    )


@dataclass
class FoldResult:
    """One scorer on one fold: per-criterion figures, and what fitting and scoring cost."""

    benchmark: str
    scorer: str
    fold: int
    qwk: dict[str, float]
    human_qwk: dict[str, float]
    rmse: dict[str, float]
    target_error: dict[str, float]
    auto_share: dict[str, float]
    auto_error: dict[str, float]
    test_items: dict[str, int]
    train_items: int
    fit_seconds: float
    predict_seconds: float
    hardware: str = field(default_factory=lambda: hardware())
    # per credential: complete test submissions, auto decisions, wrong among them (false awards
    # and false not-yet), and the decision target; empty in results from before decisions
    decision_submissions: dict[str, int] = field(default_factory=dict)
    decision_auto: dict[str, int] = field(default_factory=dict)
    decision_false_awards: dict[str, int] = field(default_factory=dict)
    decision_false_not_yet: dict[str, int] = field(default_factory=dict)
    decision_target: dict[str, float] = field(default_factory=dict)
    # per criterion, on the fold's calibration split: where recipes are chosen; empty in results
    # from before it was recorded
    calibration_qwk: dict[str, float] = field(default_factory=dict)
    # per criterion, on the test fold: expected calibration error of the level probabilities
    # after the calibration split's temperature; empty in results from before it was recorded
    ece: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FoldResult:
        return cls(**json.loads(text))


def hardware() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} GPU"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return cpu_description()


def folds(config: ExperimentConfig, evidence: EvidenceSet) -> list[tuple[int, EvidenceSet]]:
    """(fold number, evidence with train / calibration / test) for the set's protocol:
    the data's own folds where every item has one, hashed folds for HASH_FOLDED sets, else
    the one fixed split the data defines (fold 0)."""
    everything = pd.concat(list(evidence.splits.values()), ignore_index=True)
    given = np.asarray(everything["fold"])
    seed = config.data.split.seed
    if len(given) and (given >= 0).all():
        fold_of = given
    elif config.data.adapter in HASH_FOLDED:
        fold_of = np.array(
            [int(NUM_FOLDS * educator_position(e, seed)) + 1 for e in everything["educator_id"]]
        )
    else:
        return [(0, evidence)]
    # Another seed than the hashed folds': with the same one the held-back educators would
    # all sit in the last fold, which would then have no calibration split at all.
    held_back = SplitConfig(
        train=1 - CALIBRATION_SHARE, calibration=CALIBRATION_SHARE, test=0.0, seed=seed + 1
    )
    calibration = np.array(
        [educator_split(e, held_back).value == "calibration" for e in everything["educator_id"]]
    )
    out = []
    for fold in sorted(set(fold_of.tolist())):
        test = fold_of == fold
        splits = {
            "train": select(everything, ~test & ~calibration),
            "calibration": select(everything, ~test & calibration),
            "test": select(everything, test),
        }
        out.append((int(fold), EvidenceSet(evidence.credentials, splits, evidence.report)))
    return out


def select(table: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """The rows a mask picks, renumbered 0..n-1 as every split is."""
    return table[mask].reset_index(drop=True)


# fine-tuning choices a table names, so candidate recipes never merge into one row:
# (param, mark in the label, its value when off)
RECIPE_MARKS = (
    ("layer_lr_decay", "llrd", 1.0),
    ("ranking_weight", "rank", 0.0),
    ("stack_words", "words", True),  # the essay scorer's booster without words: -words0
    ("stack_blocks", "blocks", True),
)


def scorer_label(scorer: Scorer) -> str:
    """The scorer's name in tables: its kind, marked where it also reads evidence length or
    starts from another encoder than the bundled one (`embeddings-mpnet`)."""
    params = scorer.get_params()
    label = scorer.kind + ("-length" if params.get("length_features") else "")
    base_model = params.get("base_model")
    if isinstance(params.get("embeddings"), str):  # the essay scorer reading encoder vectors
        label += "-" + (
            "minilm" if params["embeddings"] == BUNDLED else Path(params["embeddings"]).name
        )
    if isinstance(base_model, str) and base_model != BUNDLED:
        label += f"-{Path(base_model).name}"
    for name, mark, off in RECIPE_MARKS:
        value = params.get(name, off)
        if value != off:
            label += f"-{mark}{value:g}"
    return label


def fit_fold(
    config: ExperimentConfig, evidence: EvidenceSet, scorer: ScorerSpec
) -> tuple[Scorer, float]:
    """The scorer fitted on the fold's train split, and the seconds it took."""
    model = build_scorer(config.model_copy(update={"scorer": scorer}), evidence)
    return model, fit_scorer(model, evidence, config.evaluation.certification_share)


def pool_fold(
    fitted: list[tuple[Scorer, float]], evidence: EvidenceSet, certification_share: float
) -> tuple[Scorer, float]:
    """The ensemble of a fold's fitted scorers, weights chosen on its calibration split's
    selection rows; its fit time is the members' plus the weight search."""
    started = time.perf_counter()
    selection = calibration_set(evidence, certification_share)
    ensemble = EnsembleScorer.of_fitted([model for model, _ in fitted], selection)
    seconds = time.perf_counter() - started + sum(seconds for _, seconds in fitted)
    return ensemble, seconds


def measure_fold(
    config: ExperimentConfig, evidence: EvidenceSet, fold: int, model: Scorer, fit_seconds: float
) -> FoldResult:
    started = time.perf_counter()
    evaluation = evaluate(model, evidence, config.evaluation)
    predict_seconds = time.perf_counter() - started
    return FoldResult(
        benchmark=config.name,
        scorer=scorer_label(model),
        fold=fold,
        qwk={k: a.qwk for k, a in evaluation.agreement.items() if a.items},
        human_qwk=human_agreement(evidence),
        rmse={key: errors.rmse_expected for key, errors in evaluation.errors.items()},
        target_error={k: t.target_error for k, t in evaluation.triage.items()},
        auto_share={k: t.auto_share for k, t in evaluation.triage.items()},
        auto_error={k: t.auto_error for k, t in evaluation.triage.items()},
        test_items={k: a.items for k, a in evaluation.agreement.items()},
        train_items=len(evidence.splits["train"]),
        fit_seconds=fit_seconds,
        # evaluate scores calibration and test once each
        predict_seconds=predict_seconds
        * len(evidence.splits["test"])
        / max(1, len(evidence.splits["test"]) + len(evidence.splits["calibration"])),
        decision_submissions={k: d.complete for k, d in evaluation.decisions.items()},
        decision_auto={k: d.auto for k, d in evaluation.decisions.items()},
        decision_false_awards={k: d.false_awards for k, d in evaluation.decisions.items()},
        decision_false_not_yet={k: d.false_not_yet for k, d in evaluation.decisions.items()},
        decision_target={k: d.target_error for k, d in evaluation.decisions.items()},
        calibration_qwk=evaluation.calibration_qwk,
        ece={key: after for key, (_, after, _) in evaluation.calibration.items()},
    )


def human_agreement(evidence: EvidenceSet) -> dict[str, float]:
    """First rater against second on every double-scored item, whichever split holds it (the
    ASAP-SAS leaderboard has one score per answer, its training set two)."""
    pairs: dict[str, tuple[list[int], list[int], int]] = {}
    for split in evidence.splits.values():
        for key, scores, levels in zip(
            criterion_keys(split), split["scores"], split["num_levels"], strict=True
        ):
            if len(scores) > 1:
                first, second, _ = pairs.setdefault(str(key), ([], [], int(levels)))
                first.append(scores[0]["level"])
                second.append(scores[1]["level"])
    return {
        key: quadratic_weighted_kappa(first, second, levels)
        for key, (first, second, levels) in pairs.items()
    }


def run_benchmark(
    config: ExperimentConfig,
    scorers: list[ScorerSpec],
    only_folds: list[int] | None = None,
    results: Path | None = None,
    ensemble: bool = False,
) -> list[FoldResult]:
    """Every scorer on every fold (or `only_folds`), and with `ensemble` the pool of them all;
    each result is appended to `results` as soon as it is measured."""
    evidence = load_evidence(config.data)
    out: list[FoldResult] = []

    def record(result: FoldResult) -> None:
        out.append(result)
        if results is not None:
            results.parent.mkdir(parents=True, exist_ok=True)
            with results.open("a") as sink:
                sink.write(result.to_json() + "\n")

    for fold, fold_evidence in folds(config, evidence):
        if only_folds and fold not in only_folds:
            continue
        fitted = []
        for scorer in scorers:
            model, fit_seconds = fit_fold(config, fold_evidence, scorer)
            record(measure_fold(config, fold_evidence, fold, model, fit_seconds))
            fitted.append((model, fit_seconds))
        if ensemble and len(fitted) > 1:
            share = config.evaluation.certification_share
            model, fit_seconds = pool_fold(fitted, fold_evidence, share)
            record(measure_fold(config, fold_evidence, fold, model, fit_seconds))
    return out
