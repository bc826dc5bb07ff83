"""Evaluate a fitted scorer and fit its routing policy.

The calibration split fits what the policy learns, each fit on its own rows
(eval/protocol.py): temperatures and the recalibration of P(earned) on some, the certified
thresholds and conformal sets on others. The test split, never used for fitting, confirms
the guarantee (eval/selective.py) and measures agreement, fairness and what triage achieves.
Training runs and `prescore evaluate` both call `evaluate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from prescore.data.load import EvidenceSet
from prescore.data.schema import CriterionKey, Routing
from prescore.eval.agreement import quadratic_weighted_kappa, standardised_mean_difference
from prescore.eval.calibration import (
    apply_temperature,
    conformal_set_threshold,
    expected_calibration_error,
    fit_temperature,
)
from prescore.eval.decisions import Recalibration, fit_recalibration
from prescore.eval.input_checks import fit_input_profile
from prescore.eval.protocol import CalibrationPlan, Protocol, calibration_plan
from prescore.eval.qualification import CriterionAgreement, QualificationGates, measure, qualify
from prescore.eval.risk_control import fit_threshold
from prescore.eval.routing import (
    CriterionPolicy,
    DecisionPolicy,
    Route,
    RoutingPolicy,
    suggestion_confidence,
)
from prescore.eval.scoring import ScoredBy, score_submissions
from prescore.eval.selective import (
    ErrorTest,
    Target,
    choose_target,
    error_tests,
    too_few_to_certify,
)
from prescore.eval.submissions import (
    DecisionGates,
    DecisionSettings,
    DecisionTriage,
    Submission,
    confirm_on_test,
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
        50, ge=1, description="smallest subgroup whose auto decisions are judged on their own"
    )
    protocol: Protocol = Field(
        "crossfit",
        description="split: certification rows apart from the rows temperatures and Platt are "
        "fitted on; crossfit: every row that selected no model certifies, scored by fits on the "
        "other folds (eval/protocol.py)",
    )
    certification_share: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="share of the calibration educators held to certify thresholds (and never "
        "to select a model)",
    )


@dataclass
class Triage:
    """What the policy does on held-out items of one criterion."""

    target_error: float
    threshold: float | None
    auto_share: float
    auto_error: float  # disagreement with the final human level among auto items
    auto_items: int
    error_tests: list[ErrorTest] = field(default_factory=list)  # the confirmation on test


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


SUBGROUP_FAILURE = "subgroup_agreement"  # how a flagged group's failure begins (routing: full)
SUBGROUP_MAX_ABS_SMD = 0.10  # RSMTool's per-subgroup bounds (Williamson et al. 2012)
SUBGROUP_MIN_QWK = 0.70


@dataclass(frozen=True)
class ValueErrors:
    items: int
    rmse_level: float
    mae_level: float
    rmse_expected: float
    mae_expected: float


EVALUATED = ScoredBy("", "")  # the evaluation scores with a fitted scorer, before registration
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
    "reasons",
    "decision",
    "p_earned",
    "decision_route",
    "decision_reasons",
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
                f"decision_auto.{credential}": float(d.auto),
                f"decision_submissions.{credential}": float(d.complete),
                f"decision_certification.{credential}": float(d.certification_submissions),
                f"decision_qualified.{credential}": float(d.qualified),
            }
        return {k: v for k, v in out.items() if not math.isnan(v)}


def rater_levels(scores: pd.Series, rater: int) -> list[int]:
    """A rater's level (0: first, 1: second) where two raters scored the item; -1 elsewhere."""
    return [int(s[rater]["level"]) if len(s) > 1 else -1 for s in scores]


def human_disagreement(rows: pd.DataFrame, tolerance: int = 0) -> tuple[float | None, int]:
    """(share of double-scored items on which the first two raters differ by more than
    `tolerance` levels, how many items were double-scored)."""
    pairs = [(s[0]["level"], s[1]["level"]) for s in rows["scores"] if len(s) > 1]
    rate = None if not pairs else float(np.mean([abs(a - b) > tolerance for a, b in pairs]))
    return rate, len(pairs)


def item_target(settings: EvaluationSettings, rows: pd.DataFrame) -> Target:
    """The items' target: configured, else the humans' disagreement on enough pairs."""
    rate, pairs = human_disagreement(rows, settings.error_tolerance)
    return choose_target(settings.target_error, rate, pairs, settings.fallback_target_error)


def fit_temperatures(
    raw: np.ndarray, labels: np.ndarray, keys: np.ndarray, rows: np.ndarray, fitted: list[str]
) -> dict[str, float]:
    """One temperature per criterion, fitted on `rows` of the calibration split alone."""
    out = {}
    for key in fitted:
        chosen = rows & (keys == key)
        out[key] = fit_temperature(raw[chosen], labels[chosen]) if chosen.any() else 1.0
    return out


def with_temperatures(
    raw: np.ndarray, keys: np.ndarray, temperatures: dict[str, float]
) -> np.ndarray:
    calibrated = raw.copy()
    for key, temperature in temperatures.items():
        rows = keys == key
        if rows.any():
            calibrated[rows] = apply_temperature(raw[rows], temperature)
    return calibrated


@dataclass(frozen=True)
class CalibratedSplit:
    """The calibration split's probabilities as each fit saw them (eval/protocol.py): with the
    served temperatures, with each fold's, and as certified (each row with its own fold's)."""

    plan: CalibrationPlan
    served_temperatures: dict[str, float]
    served: np.ndarray
    folds: list[np.ndarray]

    @property
    def certified(self) -> np.ndarray:
        out = self.served.copy()
        for (rows, _), probabilities in zip(self.plan.folds, self.folds, strict=True):
            out[rows] = probabilities[rows]
        return out


def calibrate_split(
    raw: np.ndarray,
    calibration: pd.DataFrame,
    keys: np.ndarray,
    criteria: list[str],
    settings: EvaluationSettings,
    selects: bool,
) -> CalibratedSplit:
    plan = calibration_plan(
        [str(e) for e in calibration["educator_id"]],
        settings.protocol,
        settings.certification_share,
        selects,
    )
    labels = calibration["label"].to_numpy() if len(calibration) else np.zeros(0, dtype=int)
    served = fit_temperatures(raw, labels, keys, plan.served, criteria)
    folds = [
        served
        if np.array_equal(rows, plan.served)
        else fit_temperatures(raw, labels, keys, rows, criteria)
        for _, rows in plan.folds
    ]
    return CalibratedSplit(
        plan=plan,
        served_temperatures=served,
        served=with_temperatures(raw, keys, served),
        folds=[with_temperatures(raw, keys, t) for t in folds],
    )


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
    known = {
        key: (credential, criterion)
        for key in sorted(scorer.num_levels_)
        if (credential := evidence.credentials.get(CriterionKey.parse(key)[0])) is not None
        and (criterion := credential.criterion(CriterionKey.parse(key)[1])) is not None
    }
    fitted = calibrate_split(
        raw_calibration,
        calibration,
        calibration_keys,
        list(known),
        settings,
        scorer.selects_on_eval_set,
    )
    certified, certify = fitted.certified, fitted.plan.certify
    calibration_labels = (
        calibration["label"].to_numpy() if len(calibration) else np.zeros(0, dtype=int)
    )
    calibrated_test = with_temperatures(test_probabilities, test_keys, fitted.served_temperatures)

    criteria: dict[str, CriterionPolicy] = {}
    agreement: dict[str, CriterionAgreement] = {}
    ece: dict[str, tuple[float, float, float]] = {}
    calibration_qwk: dict[str, float] = {}
    tolerance = settings.error_tolerance
    for key, (credential, criterion) in known.items():
        in_calibration = calibration_keys == key
        in_test = test_keys == key
        temperature = fitted.served_temperatures[key]
        target = item_target(settings, calibration[in_calibration])
        certifying = in_calibration & certify
        labels = calibration_labels[certifying]
        if in_calibration.any():
            calibration_qwk[key] = quadratic_weighted_kappa(
                raw_calibration[in_calibration].argmax(axis=1).tolist(),
                calibration_labels[in_calibration].tolist(),
                scorer.num_levels_[key],
            )
        set_threshold = conformal_set_threshold(
            certified[certifying], labels, settings.set_coverage
        )
        threshold, failures = certify_item_threshold(
            certified[certifying], labels, target, credential.routing, settings
        )

        measured = CriterionAgreement(key, 0, *(float("nan"),) * 5, np.zeros((0, 0)))
        if in_test.any():
            rows = test[in_test]
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
        agreement[key] = qualify(measured, settings.gates)  # reported; binds for routing: full
        if credential.routing is Routing.full:
            failures += agreement[key].failures
        criteria[key] = CriterionPolicy(
            credential_id=credential.id,
            criterion_id=criterion.id,
            stakes=credential.stakes,
            level_labels=criterion.labels,
            level_values=criterion.values,
            title=criterion.title,
            level_descriptions=[level.description for level in criterion.levels],
            met_index=criterion.met_index,
            set_threshold=set_threshold,
            set_coverage=settings.set_coverage,
            qualified=not failures,
            qualification_failures=failures,
            temperature=temperature,
            threshold=threshold,
            target_error=target.error,
            target_basis=target.basis,
            routing=credential.routing,
            certification_items=int(certifying.sum()),
            error_tolerance=tolerance,
            confidence_level=settings.confidence_level,
        )

    subgroups = fairness(test, calibrated_test, evidence, settings)
    for row in subgroups:
        policy_of = criteria[row.criterion]
        if row.flagged and policy_of.routing is Routing.full:  # binds where the machine decides all
            failure = f"{SUBGROUP_FAILURE} {row.group}={row.value}: {row.why}"
            agreement[row.criterion].failures.append(failure)
            policy_of.qualification_failures.append(failure)
            policy_of.qualified = False
    tokenizer = scorer.base_tokenizer()
    policy = RoutingPolicy(
        gates=settings.gates,
        input_profile=profile,
        criteria=criteria,
        language=language_fit(list(train["text"]), tokenizer) if tokenizer is not None else None,
    )
    input_problems = [profile.problems(text) for text in test["text"]]  # once per held-out text
    item_tests = confirm_items_on_test(policy, test, test_probabilities, input_problems, settings)
    decisions = fit_decisions(
        evidence, settings, calibration, fitted, test, calibrated_test, criteria, input_problems
    )
    policy.decisions = {credential: fitted for credential, (fitted, _) in decisions.items()}
    # what serving says of each test item and its submission: the scoring core, final policy
    predictions = test_predictions(policy, test, test_probabilities, input_problems)
    prediction_keys = criterion_keys(predictions) if len(predictions) else np.array([])
    triage = {
        key: item_triage(policy.criteria[key], predictions[prediction_keys == key])
        for key in criteria
        if (prediction_keys == key).any()
    }
    for key, tests in item_tests.items():
        if key in triage:
            triage[key].error_tests = tests
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


def row_groups(split: pd.DataFrame) -> list[dict[str, str]]:
    """Each row's group fields ('group_' columns, the prefix dropped), where given."""
    columns = [c for c in split.columns if c.startswith("group_")]
    return (
        [
            {
                c.removeprefix("group_"): str(v)
                for c, v in zip(columns, values, strict=True)
                if pd.notna(v)
            }
            for values in split[columns].itertuples(index=False)
        ]
        if columns
        else [{} for _ in range(len(split))]
    )


def certify_item_threshold(
    probabilities: np.ndarray,
    labels: np.ndarray,
    target: Target,
    routing: Routing,
    settings: EvaluationSettings,
) -> tuple[float | None, list[str]]:
    """(threshold, qualification failures) of one criterion, from its certification rows:
    the Learn-then-Test threshold, or none where the rows could never prove the target; every
    item passes (0.0) where the machine scores the criterion in full."""
    if routing is Routing.full:
        return 0.0, []
    too_few = too_few_to_certify(len(labels), target.error, settings.confidence_level)
    if not len(labels):
        return None, [too_few]
    suggested, confidence = suggestion_confidence(probabilities, settings.error_tolerance)
    fit = fit_threshold(
        confidence,
        np.abs(suggested - labels) <= settings.error_tolerance,
        target.error,
        settings.confidence_level,
    )
    return fit.threshold, [too_few] if too_few else []


def confirm_items_on_test(
    policy: RoutingPolicy,
    test: pd.DataFrame,
    raw: np.ndarray,
    input_problems: list[list[str]],
    settings: EvaluationSettings,
) -> dict[str, list[ErrorTest]]:
    """Judge each selectively routed criterion on the test split, in place: the items its
    threshold would send auto (were it qualified) err no more than the target beyond chance,
    for everyone and for each group of at least `min_group_size` items. Returns the tests."""
    would_be = policy.model_copy(
        update={
            "criteria": {
                key: c.model_copy(update={"qualified": True, "qualification_failures": []})
                for key, c in policy.criteria.items()
            }
        }
    )
    routed = test_predictions(would_be, test, raw, input_problems)
    keys = criterion_keys(routed) if len(routed) else np.array([])
    test_keys = criterion_keys(test) if len(test) else np.array([])
    scored = np.array([str(k) in policy.criteria for k in test_keys], dtype=bool)
    groups = np.array(row_groups(test), dtype=object)[scored] if len(test) else np.array([])
    out = {}
    for key, criterion in policy.criteria.items():
        mine = keys == key
        if criterion.routing is Routing.full or not mine.any():
            continue
        rows = routed[mine]
        position = {label: index for index, label in enumerate(criterion.level_labels)}
        suggested = rows["level"].map(position).to_numpy()
        gap = np.abs(suggested - rows["human_level"].map(position).to_numpy())
        tests = error_tests(
            (rows["route"] == Route.auto.value).to_numpy(),
            gap > criterion.error_tolerance,
            list(groups[mine]),
            criterion.target_error,
            settings.min_group_size,
        )
        failed = [t.failure() for t in tests if t.failed]
        if failed:
            criterion.qualification_failures.extend(failed)
            criterion.qualified = False
        out[key] = tests
    return out


def test_predictions(
    policy: RoutingPolicy,
    test: pd.DataFrame,
    raw: np.ndarray,
    input_problems: list[list[str]],
) -> pd.DataFrame:
    """Per test item, what serving returns (suggested level, expected value, confidence,
    route, its submission's decision) beside the human's level: the scoring core
    (eval/scoring.py) on the scorer's `raw` probabilities. No evidence text, so the table may
    be shared. An item without a submission_id is a submission of its own, as in
    `group_submissions`."""
    if not len(test):
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    submission = test["submission_id"] if "submission_id" in test else pd.Series(np.nan, test.index)
    frame = pd.DataFrame(
        {
            "submission_id": submission.where(submission.notna(), test["id"]).astype(str),
            "credential_id": test["credential_id"],
            "criterion_id": test["criterion_id"],
            "text": test["text"],
        }
    ).reset_index(drop=True)
    scores, decisions = score_submissions(policy, frame, raw, EVALUATED, input_problems)
    decided = {(d.submission_id, d.credential_id): d for d in decisions}
    rows = []
    for (_, item), scored, given in zip(test.iterrows(), scores, submission, strict=True):
        criterion = policy.criterion(scored.credential_id, scored.criterion_id)
        if criterion is None:  # not scored by this model: no suggestion to measure
            continue
        decision = decided[(scored.submission_id, scored.credential_id)]
        rows.append(
            {
                "id": item["id"],
                "submission_id": "" if pd.isna(given) else given,
                "credential_id": scored.credential_id,
                "criterion_id": scored.criterion_id,
                "human_level": criterion.level_labels[int(item["label"])],
                "human_value": criterion.level_values[int(item["label"])],
                "level": scored.level,
                "level_value": scored.level_value,
                "expected_value": scored.expected_value,
                "confidence": scored.confidence,
                "route": scored.route.value,
                "reasons": " ".join(scored.reasons),
                "decision": decision.decision,
                "p_earned": decision.p_earned,
                "decision_route": decision.route.value,
                "decision_reasons": " ".join(decision.reasons),
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
    fitted: CalibratedSplit,
    test: pd.DataFrame,
    calibrated_test: np.ndarray,
    criteria: dict[str, CriterionPolicy],
    input_problems: list[list[str]],
) -> dict[str, tuple[DecisionPolicy, DecisionTriage]]:
    """Each credential whose every criterion the model scores: its decision policy (Platt
    recalibration fitted on the served rows, thresholds certified on the certification
    submissions, each scored by fits that never saw it), confirmed on the test submissions."""
    decision_settings = DecisionSettings(
        fallback_target_error=settings.decision_target_error,
        max_false_award=settings.max_false_award,
        confidence_level=settings.confidence_level,
        gates=settings.decision_gates,
        min_group_size=settings.min_group_size,
    )
    scored = {
        credential_id
        for credential_id, credential in evidence.credentials.items()
        if all(str(CriterionKey(credential_id, c.id)) in criteria for c in credential.criteria)
    }
    if not scored:
        return {}
    in_scored = (
        calibration["credential_id"].isin(scored).to_numpy()
        if len(calibration)
        else np.zeros(0, bool)
    )

    def submissions(rows: np.ndarray, probabilities: np.ndarray) -> list[Submission]:
        chosen = in_scored & rows
        return group_submissions(
            calibration[chosen].reset_index(drop=True), probabilities[chosen], evidence.credentials
        )

    everyone = submissions(np.ones(len(calibration), dtype=bool), fitted.served)
    served = recalibrations(submissions(fitted.plan.served, fitted.served), scored)
    certification: dict[str, list[tuple[Submission, float]]] = {c: [] for c in scored}
    for (rows, fit_rows), probabilities in zip(fitted.plan.folds, fitted.folds, strict=True):
        fold = (
            served
            if np.array_equal(fit_rows, fitted.plan.served)
            else recalibrations(submissions(fit_rows, probabilities), scored)
        )
        for s in decidable(submissions(rows, probabilities)):
            certification[s.credential_id].append(
                (s, float(fold[s.credential_id].apply(np.array([s.p_combined]))[0]))
            )
    test_submissions = group_submissions(test, calibrated_test, evidence.credentials)
    out = {}
    for credential_id in sorted(scored):
        credential = evidence.credentials[credential_id]
        tested = [s for s in test_submissions if s.credential_id == credential_id]
        # routed in full, a criterion that scores a group of educators off disqualifies too
        unfair = [
            f"{criterion.id}: {failure}"
            for criterion in credential.criteria
            for failure in criteria[
                str(CriterionKey(credential_id, criterion.id))
            ].qualification_failures
            if failure.startswith(SUBGROUP_FAILURE)
        ]
        provisional = fit_decision_policy(
            credential,
            served[credential_id],
            certification[credential_id],
            [s for s in everyone if s.credential_id == credential_id],
            decision_settings,
        )
        policy = confirm_on_test(provisional, tested, input_problems, decision_settings, unfair)
        measured = decision_triage(policy, tested, input_problems, decision_settings)
        out[credential_id] = (policy, measured)
    return out


def decidable(submissions: list[Submission]) -> list[Submission]:
    """Complete submissions whose every item the humans scored: those a decision is judged on."""
    return [s for s in submissions if s.complete and s.human_earned is not None]


def recalibrations(
    submissions: list[Submission], credentials: set[str]
) -> dict[str, Recalibration]:
    """Per credential, the Platt recalibration of P(earned) fitted on these submissions."""
    out = {}
    for credential_id in credentials:
        mine = [s for s in decidable(submissions) if s.credential_id == credential_id]
        out[credential_id] = fit_recalibration(
            np.array([s.p_combined for s in mine]), np.array([s.human_earned for s in mine])
        )
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
