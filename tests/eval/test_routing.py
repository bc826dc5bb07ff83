"""Every routing reason, and a policy fitted end to end by `evaluate` on a small fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from prescore.data.load import DataSource, EvidenceSet, load_evidence
from prescore.data.schema import Stakes
from prescore.eval.evaluate import EvaluationSettings, evaluate
from prescore.eval.input_checks import fit_input_profile
from prescore.eval.qualification import QualificationGates
from prescore.eval.report import write_report
from prescore.eval.routing import CriterionPolicy, Reason, Route, RoutingPolicy
from prescore.eval.selective import choose_target
from prescore.models.tfidf import TfidfScorer
from tests.conftest import RUBRIC, evidence_row, write_csv

TRAINING_TEXTS = [
    f"After asking question {n} I waited a few seconds so that more students could answer."
    for n in range(300)
]


def policy(**overrides: object) -> RoutingPolicy:
    settings = {
        "credential_id": "wait-time",
        "criterion_id": "planning",
        "stakes": Stakes.low,
        "level_labels": ["Not yet", "Developing", "Proficient"],
        "level_values": [1.0, 2.0, 3.0],
        "qualified": True,
        "threshold": 0.7,
        "target_error": 0.1,
        "confidence_level": 0.9,
        **overrides,
    }
    profile = fit_input_profile(TRAINING_TEXTS, [f"e{n}" for n in range(300)])
    return RoutingPolicy(
        gates=QualificationGates(),
        input_profile=profile,
        criteria={"wait-time/planning": CriterionPolicy(**settings)},  # type: ignore[arg-type]
    )


GOOD_TEXT = "After asking my question I waited a few seconds so that students could answer."


def test_a_confident_qualified_low_stakes_prediction_goes_auto() -> None:
    decision = policy().decide("wait-time", "planning", GOOD_TEXT, confidence=0.9)
    assert decision.route is Route.auto and decision.reasons == ()


@pytest.mark.parametrize(
    ("overrides", "text", "confidence", "reason"),
    [
        ({"stakes": Stakes.high}, GOOD_TEXT, 0.99, Reason.high_stakes),
        ({"qualified": False}, GOOD_TEXT, 0.99, Reason.model_not_qualified),
        ({}, GOOD_TEXT, 0.5, Reason.low_confidence),
        ({"threshold": None}, GOOD_TEXT, 0.99, Reason.no_safe_threshold),
        ({}, "   \n ", 0.99, Reason.input_empty),
        ({}, "I waited.", 0.99, Reason.input_too_short),
        ({}, GOOD_TEXT * 40, 0.99, Reason.input_too_long),
        (
            {},
            "Nach der Frage habe ich einige Sekunden gewartet, damit die Klasse nachdenkt.",
            0.99,
            Reason.input_unfamiliar_language_or_noise,
        ),
        (
            {},
            "%%%% 1234 5678 #### $$$$ 9999 0000 @@@@ 4321 8765 &&&& 1111 2222 3333 4444",
            0.99,
            Reason.input_unfamiliar_language_or_noise,
        ),
    ],
)
def test_each_reason_sends_the_item_to_a_human(
    overrides: dict, text: str, confidence: float, reason: Reason
) -> None:
    decision = policy(**overrides).decide("wait-time", "planning", text, confidence)
    assert decision.route is Route.human
    assert reason in decision.reasons


def test_unknown_criterion_goes_to_a_human_and_reasons_accumulate() -> None:
    assert policy().decide("wait-time", "questioning", GOOD_TEXT, 0.99).reasons == (
        Reason.unknown_criterion,
    )
    many = policy(stakes=Stakes.high, qualified=False).decide("wait-time", "planning", "", 0.1)
    assert set(many.reasons) == {
        Reason.high_stakes,
        Reason.model_not_qualified,
        Reason.low_confidence,
        Reason.input_empty,
    }


def test_policy_round_trips_through_json() -> None:
    original = policy()
    assert RoutingPolicy.model_validate_json(original.model_dump_json()) == original


def learnable_evidence(folder: Path, stakes: str, routing: str = "selective") -> DataSource:
    rubrics = folder / "rubrics"
    rubrics.mkdir()
    rubric = {**RUBRIC, "stakes": stakes, "routing": routing}
    (rubrics / "wait-time.yaml").write_text(yaml.safe_dump(rubric))
    rows = [evidence_row(n) for n in range(1000)]
    words = {"0": "absent", "1": "emerging", "2": "steady", "3": "masterful"}
    for row in rows:
        level = words.get(row["final_level"], row["final_level"])  # TF-IDF skips lone digits
        row["text"] = f"My wait time practice is {level} {level}. " + row["text"]
        row["rater2_level"] = row["final_level"]  # humans agree with each other throughout
    return DataSource(path=write_csv(folder / "evidence.csv", rows))


def fitted(
    folder: Path, stakes: str, routing: str = "selective"
) -> tuple[EvidenceSet, TfidfScorer]:
    evidence = load_evidence(learnable_evidence(folder, stakes, routing))
    train = evidence.splits["train"]
    scorer = TfidfScorer(min_df=1, alpha=0.01).fit(train, np.asarray(train["label"]))
    return evidence, scorer


def test_evaluate_fits_a_policy_and_holds_the_target_on_test(tmp_path: Path) -> None:
    evidence, scorer = fitted(tmp_path, "low")
    settings = EvaluationSettings(
        target_error=0.2,
        gates=QualificationGates(min_items=20),
        protocol="crossfit",  # every calibration row certifies: the fixture's split is small
    )
    evaluation = evaluate(scorer, evidence, settings)
    assert set(evaluation.agreement) == {"wait-time/planning", "wait-time/reflection"}
    for key, agreement in evaluation.agreement.items():
        criterion = evaluation.policy.criteria[key]
        assert criterion.qualified, criterion.qualification_failures  # selective: by auto error
        assert agreement.human_qwk == pytest.approx(1.0)
        triage = evaluation.triage[key]
        assert triage.threshold is not None and triage.auto_share > 0
        assert triage.auto_error <= 0.2
    report = write_report(evaluation, tmp_path / "report", "fixture")
    text = report.read_text()
    assert "Agreement with humans" in text and "Triage on held-out items" in text
    assert (tmp_path / "report" / "routing_policy.json").is_file()
    assert (tmp_path / "report" / "reliability.png").stat().st_size > 1000


def test_high_stakes_and_unqualified_criteria_route_everything_to_humans(tmp_path: Path) -> None:
    evidence, scorer = fitted(tmp_path, "high", "full")
    # full routing: the Williamson gates bind, and 10,000 held-out items are not there
    strict = EvaluationSettings(target_error=0.2, gates=QualificationGates(min_items=10_000))
    evaluation = evaluate(scorer, evidence, strict)
    test = evidence.splits["test"]
    probabilities = scorer.predict_proba(test)
    for row, p in zip(test.to_dict("records"), probabilities, strict=True):
        decision = evaluation.policy.decide(
            row["credential_id"], row["criterion_id"], row["text"], float(p.max())
        )
        assert decision.route is Route.human
        assert (
            Reason.high_stakes in decision.reasons
            and Reason.model_not_qualified in decision.reasons
        )


def test_the_target_is_configured_else_human_on_enough_pairs_else_fallback() -> None:
    assert choose_target(0.3, 0.1, 500, 0.2).error == 0.3
    assert choose_target(None, 0.1, 500, 0.2).error == 0.1
    assert choose_target(None, 0.0, 500, 0.2).error == 0.0  # humans always agree: no slack
    assert choose_target(None, None, 0, 0.25).error == 0.25
    few = choose_target(None, 0.02, 29, 0.25)  # 29 pairs measure the humans too loosely
    assert few.error == 0.25 and "fallback" in few.basis and "29" in few.basis
    assert choose_target(None, 0.02, 30, 0.25).error == 0.02


def test_a_tolerance_counts_near_misses_as_agreement() -> None:
    from prescore.eval.evaluate import human_disagreement
    from prescore.eval.routing import suggestion_confidence

    probabilities = np.array([[0.1, 0.5, 0.3, 0.1], [0.6, 0.3, 0.1, 0.0], [0.0, 0.1, 0.2, 0.7]])
    best, exact = suggestion_confidence(probabilities, 0)
    assert best.tolist() == [1, 0, 3] and exact == pytest.approx([0.5, 0.6, 0.7])
    best, adjacent = suggestion_confidence(probabilities, 1)
    assert best.tolist() == [1, 0, 3] and adjacent == pytest.approx([0.9, 0.9, 0.9])
    rater_pairs = [[{"level": 1}, {"level": 2}], [{"level": 0}, {"level": 3}], [{"level": 2}]]
    rows = pd.DataFrame({"scores": rater_pairs})
    assert human_disagreement(rows, 0) == (1.0, 2)  # both double-scored items differ
    assert human_disagreement(rows, 1) == (0.5, 2)  # only the three-level gap counts


def test_a_policy_with_a_tolerance_routes_on_the_window_probability() -> None:
    routing = policy(threshold=0.85, error_tolerance=1)
    criterion = routing.criterion("wait-time", "planning")
    assert criterion is not None
    level, confidence = criterion.suggest(np.array([0.05, 0.6, 0.35]))
    assert level == 1 and confidence == pytest.approx(1.0)
    assert routing.decide("wait-time", "planning", GOOD_TEXT, confidence).route is Route.auto
    exact = policy(threshold=0.85).criterion("wait-time", "planning")
    assert exact is not None and exact.suggest(np.array([0.05, 0.6, 0.35]))[1] == pytest.approx(0.6)


def test_a_fitted_policy_gives_back_the_rubrics_it_was_fitted_on(tmp_path: Path) -> None:
    with_descriptions = {
        **RUBRIC,
        "stakes": "high",
        "award": {"at_least": 1},
        "criteria": [
            {
                **RUBRIC["criteria"][0],  # type: ignore[index]
                "levels": [
                    {"value": 1, "label": "Not yet", "description": "no pause"},
                    {"value": 2, "label": "Developing", "description": "some pauses"},
                    {"value": 3, "label": "Proficient", "description": "every question"},
                ],
            },
            RUBRIC["criteria"][1],  # type: ignore[index]
        ],
    }
    source = learnable_evidence(tmp_path, "high")
    (tmp_path / "rubrics" / "wait-time.yaml").write_text(yaml.safe_dump(with_descriptions))
    evidence = load_evidence(source)
    train = evidence.splits["train"]
    scorer = TfidfScorer(min_df=1, alpha=0.01).fit(train, np.asarray(train["label"]))
    settings = EvaluationSettings(gates=QualificationGates(min_items=20))
    policy = evaluate(scorer, evidence, settings).policy
    rebuilt = RoutingPolicy.model_validate_json(policy.model_dump_json()).credentials()
    original = evidence.credentials["wait-time"]
    # the title travels once the decision policy carries it; the criteria, levels, met levels,
    # stakes and award rule come back as written
    titled = policy.decisions["wait-time"].model_copy(update={"title": original.title})
    assert rebuilt["wait-time"].model_copy(update={"title": original.title}) == original
    assert policy.model_copy(update={"decisions": {"wait-time": titled}}).credentials() == {
        "wait-time": original
    }


def test_a_rubric_is_rebuilt_only_where_the_policy_knows_it_whole() -> None:
    from prescore.data.schema import AwardRule
    from prescore.eval.routing import DecisionPolicy

    decision = DecisionPolicy(
        credential_id="wait-time",
        title="Wait time",
        stakes=Stakes.low,
        award=AwardRule(),
        criteria=["planning"],
        qualified=True,
        target_error=0.1,
        confidence_level=0.9,
    )

    def with_decision(**overrides: object) -> RoutingPolicy:
        return policy(**overrides).model_copy(update={"decisions": {"wait-time": decision}})

    # no decision policy: the model scored part of a rubric, whose whole and award are unknown
    assert policy(met_index=2).credentials() == {}
    with pytest.raises(ValueError, match="predates met levels"):
        with_decision().credentials()
    rebuilt = with_decision(met_index=2, title="Plans pauses").credentials()["wait-time"]
    assert rebuilt.title == "Wait time" and rebuilt.stakes is Stakes.low
    (criterion,) = rebuilt.criteria
    assert (criterion.title, criterion.met_level, criterion.labels) == (
        "Plans pauses",
        "Proficient",
        ["Not yet", "Developing", "Proficient"],
    )
