"""Evaluate a fitted scorer and fit its routing policy.

The calibration split fits what the policy learns (temperatures, confidence thresholds);
the test split, never used for fitting, measures agreement, qualification, fairness and
what triage achieves. Training runs and `prescore evaluate` both call `evaluate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from prescore.data.load import EvidenceSet
from prescore.data.schema import CriterionKey
from prescore.eval.agreement import quadratic_weighted_kappa, standardised_mean_difference
from prescore.eval.calibration import (
    apply_temperature,
    conformal_set_threshold,
    expected_calibration_error,
    fit_temperature,
)
from prescore.eval.input_checks import fit_input_profile
from prescore.eval.qualification import CriterionAgreement, QualificationGates, measure, qualify
from prescore.eval.risk_control import fit_threshold
from prescore.eval.routing import (
    CriterionPolicy,
    DecisionPolicy,
    Route,
    RoutingPolicy,
    suggestion_confidence,
)
from prescore.eval.submissions import (
    DecisionGates,
    DecisionSettings,
    DecisionTriage,
    decision_triage,
    fit_decision_policy,
    group_submissions,
)
from prescore.models.inputs import criterion_keys
from prescore.models.language import LanguageFit, language_fit
from prescore.models.scorer import Scorer


class EvaluationSettings(BaseModel):
    """The `evaluation:` block of a config."""

    model_config = ConfigDict(extra="forbid")

    gates: QualificationGates = Field(default_factory=QualificationGates)
    target_error: float | None = Field(
        None, gt=0, lt=1, description="error allowed among auto items; default: human-human"
    )
    fallback_target_error: float = Field(
        0.2, gt=0, lt=1, description="used where no item has a second human score"
    )
    error_tolerance: int = Field(
        0,
        ge=0,
        description="levels an auto score may differ from the human's and still count as "
        "agreement; 0: exact (the default), 1: adjacent, for fine scales like ELL's half points",
    )
    confidence_level: float = Field(0.9, gt=0, lt=1)
    set_coverage: float = Field(0.9, gt=0, lt=1, description="of the conformal prediction sets")
    decision_gates: DecisionGates = Field(default_factory=DecisionGates)
    decision_target_error: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="decision error allowed among auto decisions where no submission has two "
        "raters; else the human-human disagreement on the decision",
    )
    max_false_award: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="a stricter bound on auto 'earned' decisions the humans would not award",
    )
    min_group_size: int = Field(
        50, ge=1, description="smallest subgroup whose agreement is judged (and may be flagged)"
    )


@dataclass
class Triage:
    """What the policy does on held-out items of one criterion."""

    target_error: float
    threshold: float | None
    auto_share: float
    auto_error: float  # disagreement with the final human level among auto items
    auto_items: int


@dataclass
class FairnessRow:
    criterion: str
    group: str
    value: str
    items: int
    qwk: float
    smd: float
    flagged: bool  # judged (items >= min_group_size) and outside the subgroup bounds
    why: str = ""


SUBGROUP_FAILURE = "subgroup"  # how a flagged group's qualification failure begins
SUBGROUP_MAX_ABS_SMD = 0.10  # RSMTool's per-subgroup bounds (Williamson et al. 2012)
SUBGROUP_MIN_QWK = 0.70


@dataclass(frozen=True)
class ValueErrors:
    items: int
    rmse_level: float
    mae_level: float
    rmse_expected: float
    mae_expected: float


PREDICTION_COLUMNS = [
    "id",
    "submission_id",
    "credential_id",
    "criterion_id",
    "human_level",
    "human_value",
    "level",
    "level_value",
    "expected_value",
    "confidence",
    "route",
]


@dataclass
class Evaluation:
    policy: RoutingPolicy
    agreement: dict[str, CriterionAgreement]
    calibration: dict[str, tuple[float, float, float]]  # key -> test ECE before, after; temperature
    triage: dict[str, Triage]
    fairness: list[FairnessRow] = field(default_factory=list)
    test_probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    test_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    raw_test_probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    decisions: dict[str, DecisionTriage] = field(default_factory=dict)  # per credential
    # one row per test item: what serving would say of it (PREDICTION_COLUMNS), no evidence text
    predictions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame())
    # per criterion: RMSE and MAE, on the scale's values, of the returned level and of the
    # expected value (the probability-weighted mean of the level values)
    errors: dict[str, ValueErrors] = field(default_factory=dict)
    # per criterion: QWK of the suggested level on the calibration split, where recipes and
    # settings are chosen, so the test folds stay untouched by the choice
    calibration_qwk: dict[str, float] = field(default_factory=dict)

    @property
    def language(self) -> LanguageFit | None:
        return self.policy.language

    def metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow; test_qwk_mean is what promotion compares."""
        out: dict[str, float] = {}
        for statistic in ("qwk", "exact", "adjacent"):
            values = [getattr(a, statistic) for a in self.agreement.values() if a.items]
            if values:
                out[f"test_{statistic}_mean"] = float(np.mean(values))
        for key, a in self.agreement.items():
            name = key.replace("/", ".")
            out |= {f"test_qwk.{name}": a.qwk, f"test_exact.{name}": a.exact}
            out |= {f"test_adjacent.{name}": a.adjacent}
            out |= {f"eval_pearson.{name}": a.pearson, f"eval_smd.{name}": a.smd}
            out[f"eval_qualified.{name}"] = float(a.qualified)
            if not math.isnan(a.human_qwk):
                out[f"eval_human_qwk.{name}"] = a.human_qwk
                out[f"eval_degradation.{name}"] = a.degradation
        for key, (before, after, temperature) in self.calibration.items():
            name = key.replace("/", ".")
            out |= {
                f"ece_before.{name}": before,
                f"ece_after.{name}": after,
                f"temperature.{name}": temperature,
            }
        for key, e in self.errors.items():
            name = key.replace("/", ".")
            out |= {
                f"test_rmse.{name}": e.rmse_level,
                f"test_mae.{name}": e.mae_level,
                f"test_rmse_expected.{name}": e.rmse_expected,
                f"test_mae_expected.{name}": e.mae_expected,
            }
        if self.language is not None:
            out["language_unfamiliar_share"] = self.language.unfamiliar_share
        for key, t in self.triage.items():
            name = key.replace("/", ".")
            out |= {
                f"triage_auto_share.{name}": t.auto_share,
                f"triage_auto_error.{name}": t.auto_error,
            }
        for credential, d in self.decisions.items():
            out |= {
                f"decision_auto_share.{credential}": d.auto_share,
                f"decision_auto_error.{credential}": d.auto_error,
                f"decision_kappa.{credential}": d.kappa,
                f"decision_target.{credential}": d.target_error,
                f"decision_ece.{credential}": d.ece,
                f"decision_false_awards.{credential}": float(d.false_awards),
                f"decision_qualified.{credential}": float(d.qualified),
            }
        return {k: v for k, v in out.items() if not math.isnan(v)}


def rater_levels(scores: pd.Series, rater: int) -> list[int]:
    """A rater's level (0: first, 1: second) where two raters scored the item; -1 elsewhere."""
    return [int(s[rater]["level"]) if len(s) > 1 else -1 for s in scores]


def human_disagreement(rows: pd.DataFrame, tolerance: int = 0) -> float | None:
    """Share of double-scored items on which the first two raters differ by more than
    `tolerance` levels."""
    pairs = [(s[0]["level"], s[1]["level"]) for s in rows["scores"] if len(s) > 1]
    return None if not pairs else float(np.mean([abs(a - b) > tolerance for a, b in pairs]))


def target_error(settings: EvaluationSettings, human_rate: float | None) -> float:
    """The configured target, else the humans' own disagreement, else the fallback.

    A human rate of 0.0 is a measurement, not a missing value: humans who always agree leave
    the model no room for error, so nothing goes auto.
    """
    if settings.target_error is not None:
        return settings.target_error
    return settings.fallback_target_error if human_rate is None else human_rate


def evaluate(scorer: Scorer, evidence: EvidenceSet, settings: EvaluationSettings) -> Evaluation:
    calibration = evidence.splits["calibration"]
    test = evidence.splits["test"]
    train = evidence.splits["train"]
    profile = fit_input_profile(list(train["text"]), list(train["educator_id"]))

    raw_calibration = (
        scorer.predict_proba(calibration) if len(calibration) else np.zeros((0, scorer.width))
    )
    test_probabilities = scorer.predict_proba(test) if len(test) else np.zeros((0, scorer.width))
    calibration_keys = criterion_keys(calibration) if len(calibration) else np.array([])
    test_keys = criterion_keys(test) if len(test) else np.array([])
    calibrated_calibration = raw_calibration.copy()
    calibrated_test = test_probabilities.copy()

    criteria: dict[str, CriterionPolicy] = {}
    agreement: dict[str, CriterionAgreement] = {}
    ece: dict[str, tuple[float, float, float]] = {}
    calibration_qwk: dict[str, float] = {}
    tolerance = settings.error_tolerance
    for key in sorted(scorer.num_levels_):
        credential_id, criterion_id = CriterionKey.parse(key)
        credential = evidence.credentials.get(credential_id)
        criterion = credential.criterion(criterion_id) if credential else None
        if credential is None or criterion is None:
            continue
        in_calibration = calibration_keys == key
        in_test = test_keys == key

        temperature, threshold_fit, target = 1.0, None, settings.fallback_target_error
        set_threshold = 1.0
        if in_calibration.any():
            rows = calibration[in_calibration]
            probabilities = raw_calibration[in_calibration]
            labels = rows["label"].to_numpy()
            calibration_qwk[key] = quadratic_weighted_kappa(
                probabilities.argmax(axis=1).tolist(), labels.tolist(), scorer.num_levels_[key]
            )
            temperature = fit_temperature(probabilities, labels)
            calibrated = apply_temperature(probabilities, temperature)
            calibrated_calibration[in_calibration] = calibrated
            target = target_error(settings, human_disagreement(rows, tolerance))
            set_threshold = conformal_set_threshold(calibrated, labels, settings.set_coverage)
            suggested, confidence = suggestion_confidence(calibrated, tolerance)
            threshold_fit = fit_threshold(
                confidence,
                np.abs(suggested - labels) <= tolerance,
                target,
                settings.confidence_level,
            )

        measured = CriterionAgreement(key, 0, *(float("nan"),) * 5, np.zeros((0, 0)))
        if in_test.any():
            rows = test[in_test]
            calibrated_test[in_test] = apply_temperature(test_probabilities[in_test], temperature)
            labels = rows["label"].to_numpy()
            ece[key] = (  # measured on held-out items, not on those the temperature was fitted to
                expected_calibration_error(test_probabilities[in_test], labels),
                expected_calibration_error(calibrated_test[in_test], labels),
                temperature,
            )
            measured = measure(
                key,
                calibrated_test[in_test].argmax(axis=1).tolist(),
                rows["label"].tolist(),
                criterion.values,
                second_human=rater_levels(rows["scores"], 1),
                first_human=rater_levels(rows["scores"], 0),
            )
        agreement[key] = qualify(measured, settings.gates)
        criteria[key] = CriterionPolicy(
            credential_id=credential_id,
            criterion_id=criterion_id,
            stakes=credential.stakes,
            level_labels=criterion.labels,
            level_values=criterion.values,
            title=criterion.title,
            level_descriptions=[level.description for level in criterion.levels],
            met_index=criterion.met_index,
            set_threshold=set_threshold,
            set_coverage=settings.set_coverage,
            qualified=agreement[key].qualified,
            qualification_failures=agreement[key].failures,
            temperature=temperature,
            threshold=threshold_fit.threshold if threshold_fit else None,
            target_error=target,
            error_tolerance=tolerance,
            confidence_level=settings.confidence_level,
        )

    subgroups = fairness(test, calibrated_test, evidence, settings)
    for row in subgroups:
        if row.flagged:  # a group the model scores off counts against its qualification
            failure = f"{SUBGROUP_FAILURE} {row.group}={row.value}: {row.why}"
            agreement[row.criterion].failures.append(failure)
            agreement[row.criterion].qualified = False
            criteria[row.criterion].qualification_failures.append(failure)
            criteria[row.criterion].qualified = False
    tokenizer = scorer.base_tokenizer()
    policy = RoutingPolicy(
        gates=settings.gates,
        input_profile=profile,
        criteria=criteria,
        language=language_fit(list(train["text"]), tokenizer) if tokenizer is not None else None,
    )
    input_problems = [profile.problems(text) for text in test["text"]]  # once per held-out text
    predictions = test_predictions(policy, test, calibrated_test, input_problems)
    prediction_keys = criterion_keys(predictions) if len(predictions) else np.array([])
    triage = {
        key: item_triage(policy.criteria[key], predictions[prediction_keys == key])
        for key in criteria
        if (prediction_keys == key).any()
    }
    decisions = fit_decisions(
        evidence,
        settings,
        calibration,
        calibrated_calibration,
        test,
        calibrated_test,
        criteria,
        input_problems,
    )
    policy.decisions = {credential: fitted for credential, (fitted, _) in decisions.items()}
    return Evaluation(
        policy=policy,
        agreement=agreement,
        calibration=ece,
        triage=triage,
        fairness=subgroups,
        test_probabilities=calibrated_test,
        test_labels=test["label"].to_numpy() if len(test) else np.zeros(0, dtype=int),
        raw_test_probabilities=test_probabilities,
        decisions={credential: measured for credential, (_, measured) in decisions.items()},
        predictions=predictions,
        errors=value_errors(predictions),
        calibration_qwk=calibration_qwk,
    )


def test_predictions(
    policy: RoutingPolicy,
    test: pd.DataFrame,
    probabilities: np.ndarray,
    input_problems: list[list[str]],
) -> pd.DataFrame:
    """Per test item, what serving would return (suggested level, expected value, confidence,
    route) beside the human's level; no evidence text, so the table may be shared."""
    rows = []
    keys = criterion_keys(test) if len(test) else np.array([])
    for (_, item), key, row, problems in zip(
        test.iterrows(), keys, probabilities, input_problems, strict=True
    ):
        criterion = policy.criteria.get(str(key))
        if criterion is None:
            continue
        calibrated = row[: len(criterion.level_values)]
        best, confidence = criterion.suggest(calibrated)
        route = policy.decide_checked(
            criterion.credential_id, criterion.criterion_id, confidence, problems
        )
        submission = item.get("submission_id")
        rows.append(
            {
                "id": item["id"],
                "submission_id": "" if pd.isna(submission) else submission,
                "credential_id": criterion.credential_id,
                "criterion_id": criterion.criterion_id,
                "human_level": criterion.level_labels[int(item["label"])],
                "human_value": criterion.level_values[int(item["label"])],
                "level": criterion.level_labels[best],
                "level_value": criterion.level_values[best],
                "expected_value": float(np.dot(calibrated, criterion.level_values)),
                "confidence": confidence,
                "route": route.route.value,
            }
        )
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)


def value_errors(predictions: pd.DataFrame) -> dict[str, ValueErrors]:
    """RMSE and MAE per criterion, on the scale's values, of the returned level and of the
    expected value: the figures published results on graded scales report."""
    out = {}
    keys = criterion_keys(predictions) if len(predictions) else np.array([])
    for key in sorted(set(keys)):
        rows = predictions[keys == key]
        human = rows["human_value"].to_numpy(float)
        level = rows["level_value"].to_numpy(float) - human
        expected = rows["expected_value"].to_numpy(float) - human
        out[str(key)] = ValueErrors(
            items=len(rows),
            rmse_level=float(np.sqrt(np.mean(level**2))),
            mae_level=float(np.mean(np.abs(level))),
            rmse_expected=float(np.sqrt(np.mean(expected**2))),
            mae_expected=float(np.mean(np.abs(expected))),
        )
    return out


def item_triage(criterion: CriterionPolicy, predictions: pd.DataFrame) -> Triage:
    """What the live policy does with one criterion's held-out items (their rows of
    `test_predictions`): an item counts as auto only where serving would route it so (stakes,
    qualification, threshold and input checks together), not merely where its confidence
    clears the threshold."""
    position = {label: index for index, label in enumerate(criterion.level_labels)}
    suggested = predictions["level"].map(position).to_numpy()
    human = predictions["human_level"].map(position).to_numpy()
    correct = np.abs(suggested - human) <= criterion.error_tolerance
    auto = (predictions["route"] == Route.auto.value).to_numpy()
    return Triage(
        target_error=criterion.target_error,
        threshold=criterion.threshold,
        auto_share=float(auto.mean()),
        auto_error=float(1 - correct[auto].mean()) if auto.any() else float("nan"),
        auto_items=int(auto.sum()),
    )


def fit_decisions(
    evidence: EvidenceSet,
    settings: EvaluationSettings,
    calibration: pd.DataFrame,
    calibrated_calibration: np.ndarray,
    test: pd.DataFrame,
    calibrated_test: np.ndarray,
    criteria: dict[str, CriterionPolicy],
    input_problems: list[list[str]],
) -> dict[str, tuple[DecisionPolicy, DecisionTriage]]:
    """Each credential whose every criterion the model scores: its decision policy, fitted
    on the calibration submissions, and what it does with the test submissions."""
    decision_settings = DecisionSettings(
        fallback_target_error=settings.decision_target_error,
        max_false_award=settings.max_false_award,
        confidence_level=settings.confidence_level,
        gates=settings.decision_gates,
    )
    scored = {
        credential_id
        for credential_id, credential in evidence.credentials.items()
        if all(str(CriterionKey(credential_id, c.id)) in criteria for c in credential.criteria)
    }
    calibration = calibration[calibration["credential_id"].isin(scored)]
    calibration_submissions = group_submissions(
        calibration.reset_index(drop=True),
        calibrated_calibration[calibration.index.to_numpy()],
        evidence.credentials,
    )
    test_submissions = group_submissions(test, calibrated_test, evidence.credentials)
    out = {}
    for credential_id in sorted(scored):
        credential = evidence.credentials[credential_id]
        held = [s for s in calibration_submissions if s.credential_id == credential_id]
        tested = [s for s in test_submissions if s.credential_id == credential_id]
        # a criterion that scores a group of educators off disqualifies the decision too
        unfair = [
            f"{criterion.id}: {failure}"
            for criterion in credential.criteria
            for failure in criteria[
                str(CriterionKey(credential_id, criterion.id))
            ].qualification_failures
            if failure.startswith(SUBGROUP_FAILURE)
        ]
        fitted = fit_decision_policy(credential, held, tested, decision_settings, unfair)
        measured = decision_triage(
            fitted, tested, input_problems, settings.decision_gates, settings.min_group_size
        )
        out[credential_id] = (fitted, measured)
    return out


def fairness(
    test: pd.DataFrame,
    probabilities: np.ndarray,
    evidence: EvidenceSet,
    settings: EvaluationSettings,
) -> list[FairnessRow]:
    """Agreement by each group field, flagging groups the model scores systematically off:
    |SMD| above 0.10 or QWK below 0.70 (RSMTool's subgroup bounds), judged only on groups of
    at least `min_group_size` items, since a handful of essays flags noise."""
    rows: list[FairnessRow] = []
    group_columns = [c for c in test.columns if c.startswith("group_")]
    if not len(test) or not group_columns:
        return rows
    keys = criterion_keys(test)
    predicted = probabilities.argmax(axis=1)
    for key in sorted(set(keys)):
        credential_id, criterion_id = CriterionKey.parse(key)
        criterion = evidence.credentials[credential_id].criterion(criterion_id)
        assert criterion is not None
        values = criterion.values
        for column in group_columns:
            for value, members in test[keys == key].groupby(column):
                machine = predicted[members.index.to_numpy()]
                human = members["label"].to_numpy()
                smd = standardised_mean_difference(
                    [values[i] for i in machine], [values[i] for i in human]
                )
                qwk = quadratic_weighted_kappa(human.tolist(), machine.tolist(), len(values))
                problems = []
                if len(members) >= settings.min_group_size:
                    if not abs(smd) <= SUBGROUP_MAX_ABS_SMD:
                        problems.append(f"|SMD| {abs(smd):.3f} > {SUBGROUP_MAX_ABS_SMD:.2f}")
                    if not qwk >= SUBGROUP_MIN_QWK:
                        problems.append(f"QWK {qwk:.3f} < {SUBGROUP_MIN_QWK:.2f}")
                rows.append(
                    FairnessRow(
                        criterion=key,
                        group=column.removeprefix("group_"),
                        value=str(value),
                        items=len(members),
                        qwk=qwk,
                        smd=smd,
                        flagged=bool(problems),
                        why="; ".join(problems),
                    )
                )
    return rows
