"""The evaluation report: Markdown tables and figures, written to a folder and logged to MLflow."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from prescore.eval.calibration import reliability_figure
from prescore.eval.evaluate import Evaluation
from prescore.eval.routing import CriterionPolicy, Reason, suggestion_confidence
from prescore.models.language import FRAGMENTED_PIECES

REPORT_FILE = "evaluation.md"
POLICY_FILE = "routing_policy.json"
PREDICTIONS_FILE = "test_predictions.csv"  # per test item, no evidence text


def _number(value: float, digits: int = 3) -> str:
    return (
        ""
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def error_tolerance(evaluation: Evaluation) -> int:
    """One run evaluates every criterion with the same tolerance."""
    return max((c.error_tolerance for c in evaluation.policy.criteria.values()), default=0)


def triage_route(policy: CriterionPolicy) -> str:
    """Where the routing rule sends the criterion's most confident items."""
    reasons = policy.route(confidence=1.0).reasons
    for reason, words in (
        (Reason.high_stakes, "high stakes"),
        (Reason.model_not_qualified, "not qualified"),
        (Reason.no_safe_threshold, "no safe threshold"),
    ):
        if reason in reasons:
            return f"human ({words})"
    return "auto where confident"


def risk_coverage_figure(evaluation: Evaluation) -> Any:
    """Error among auto-scored held-out items against the share auto-scored, per criterion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 4.2))
    probabilities, labels = evaluation.test_probabilities, evaluation.test_labels
    if len(labels):
        tolerance = error_tolerance(evaluation)
        suggested, confidence = suggestion_confidence(probabilities, tolerance)
        correct = np.abs(suggested - labels) <= tolerance
        order = np.argsort(-confidence)
        ranks = np.arange(1, len(order) + 1)
        axis.plot(ranks / len(order), 1 - np.cumsum(correct[order]) / ranks, label="all criteria")
    for key, triage in evaluation.triage.items():
        if triage.threshold is not None:
            axis.scatter([triage.auto_share], [triage.auto_error], s=18, label=f"{key} policy")
    axis.set_xlabel("share auto-scored (most confident first)")
    axis.set_ylabel("error among auto-scored")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.legend(fontsize=6)
    figure.tight_layout()
    return figure


def decision_reliability_figure(evaluation: Evaluation) -> Any:
    """P(earned) against the share the humans awarded, per probability bin and credential."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4.8, 4.2))
    axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
    for credential, triage in evaluation.decisions.items():
        if triage.reliability:
            mean, share, _ = zip(*triage.reliability, strict=True)
            axis.plot(mean, share, marker="o", markersize=3, label=credential)
    axis.set_xlabel("P(earned), recalibrated")
    axis.set_ylabel("share the humans awarded")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    if any(t.reliability for t in evaluation.decisions.values()):
        axis.legend(fontsize=6)
    figure.tight_layout()
    return figure


def decision_lines(evaluation: Evaluation) -> list[str]:
    """The credential decisions: what the platform automates, counted as serving routes them."""
    if not evaluation.decisions:
        return []
    lines = [
        "## Credential decisions",
        "",
        "One decision per submission (earned / not yet) under the credential's award rule. "
        "Auto counts only the complete submissions the live policy would decide alone: low "
        "stakes, inputs that pass the checks, confidence at or above the threshold certified "
        "by Learn-then-Test on calibration submissions no other fit has seen (error among auto "
        "decisions at or below the target with the stated probability; a stricter threshold for "
        "awards where a false-award bound is set), and qualified: on this test split, the error "
        "among the decisions the threshold sends auto is not significantly above the target "
        "(one-sided exact binomial test at 5%), for everyone and for each group large enough to "
        "judge. The Williamson gates (decision kappa) are reported; they bind only for "
        "credentials the machine decides in full (`routing: full`).",
        "",
        "| credential | routing | submissions | complete | certified on | target | target from "
        "| threshold | award threshold | auto share | auto | error among auto | false awards "
        "| false not yet | guarantee held | kappa | human-human kappa | Williamson gates "
        "| ECE of P(earned) | qualified |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---|",
    ]
    for credential, t in evaluation.decisions.items():
        verdict = "yes" if t.qualified else "no: " + "; ".join(t.failures)
        williamson = "pass" if not t.williamson_failures else "; ".join(t.williamson_failures)
        lines.append(
            f"| {credential} | {t.routing} | {t.submissions} | {t.complete} | "
            f"{t.certification_submissions} | {t.target_error:.3f} | {t.target_basis} | "
            f"{'none' if t.threshold is None else f'{t.threshold:.2f}'} | "
            f"{'none' if t.award_threshold is None else f'{t.award_threshold:.2f}'} | "
            f"{t.auto_share:.3f} | {t.auto} | {_number(t.auto_error)} | {t.false_awards} | "
            f"{t.false_not_yet} | {'yes' if t.guarantee_held else '**no**'} | "
            f"{_number(t.kappa)} | {_number(t.human_kappa)} | {williamson} | "
            f"{_number(t.ece)} | {verdict} |"
        )
    groups = [
        (credential, test)
        for credential, t in evaluation.decisions.items()
        for test in t.error_tests
        if test.group
    ]
    if groups:
        lines += [
            "",
            "Auto decisions by group (groups with enough test submissions to judge; each tested "
            "on its own auto decisions, at the same level, with no correction for their number):",
            "",
            "| credential | group | submissions | would go auto | wrong | error | p-value | |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        lines += [
            f"| {credential} | {test.group} | {test.members} | {test.auto} | {test.errors} | "
            f"{_number(test.rate)} | {test.p_value:.3f} | {'**fails**' if test.failed else ''} |"
            for credential, test in groups
        ]
    return [*lines, "", "![decision reliability](decision_reliability.png)", ""]


def language_lines(evaluation: Evaluation) -> list[str]:
    """The base model's fit to the evidence's language, loudly where it does not fit."""
    fit = evaluation.language
    if fit is None:
        return []
    measured = (
        f"{fit.unfamiliar_share:.1%} of {fit.words} words of the training evidence are unknown "
        f"to the base model's tokenizer ({fit.unknown_share:.1%}) or split into "
        f"{FRAGMENTED_PIECES}+ pieces ({fit.fragmented_share:.1%}); the warning starts above "
        f"{fit.threshold:.0%}."
    )
    warning = fit.warning
    return [
        "## Language of the evidence",
        "",
        *([f"**Warning:** {warning}", ""] if warning else []),
        measured,
        "",
    ]


def markdown(evaluation: Evaluation, title: str) -> str:
    gates = evaluation.policy.gates
    lines = [
        f"# {title}",
        "",
        f"Gates (Williamson, Xi & Breyer 2012): QWK >= {gates.min_qwk:.2f}, degradation from "
        f"human-human QWK no worse than {gates.max_degradation:.2f}, |SMD| <= {gates.max_abs_smd:.2f}, "
        f"at least {gates.min_items} held-out items. Figures are on the test split; calibration "
        "and thresholds were fitted on the calibration split.",
        "",
        *language_lines(evaluation),
        *decision_lines(evaluation),
        "## Agreement with humans",
        "",
        "| criterion | items | QWK | exact | adjacent | Pearson r | SMD | human-human QWK | degradation | qualified |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, a in evaluation.agreement.items():
        verdict = "yes" if a.qualified else "no: " + "; ".join(a.failures)
        lines.append(
            f"| {key} | {a.items} | {_number(a.qwk)} | {_number(a.exact)} | {_number(a.adjacent)} | "
            f"{_number(a.pearson)} | {_number(a.smd)} | {_number(a.human_qwk)} | "
            f"{_number(a.degradation) if a.human_pairs else ''} | {verdict} |"
        )
    lines += [
        "",
        "## Error on the scale's values",
        "",
        "RMSE and MAE against the human level, in the scale's values: of the level returned "
        "(the suggestion) and of the expected value (the probability-weighted mean of the level "
        f"values). Per item in `{PREDICTIONS_FILE}`.",
        "",
        "| criterion | items | RMSE level | MAE level | RMSE expected | MAE expected |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, e in evaluation.errors.items():
        lines.append(
            f"| {key} | {e.items} | {_number(e.rmse_level)} | {_number(e.mae_level)} | "
            f"{_number(e.rmse_expected)} | {_number(e.mae_expected)} |"
        )
    lines += [
        "",
        "## Calibration",
        "",
        "| criterion | temperature | ECE before | ECE after |",
        "|---|---:|---:|---:|",
    ]
    for key, (before, after, temperature) in evaluation.calibration.items():
        lines.append(f"| {key} | {temperature:.2f} | {_number(before)} | {_number(after)} |")
    lines += [
        "",
        "![reliability](reliability.png)",
        "",
        "## Triage on held-out items",
        "",
        "Threshold: the lowest calibrated confidence at which disagreement with the human level "
        "among auto-scored items stays at or below the target with the stated probability. "
        "Auto share and error count the held-out items the live policy routes auto (stakes, "
        "qualification, threshold and input checks together). "
        + (
            f"A suggestion counts as agreeing when it is within {error_tolerance(evaluation)} "
            "level(s) of the human's."
            if error_tolerance(evaluation)
            else "A suggestion agrees only when it is the human's exact level."
        ),
        "",
        "| criterion | stakes | target error | threshold | auto share | auto error | auto items | route |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for key, t in evaluation.triage.items():
        policy = evaluation.policy.criteria[key]
        route = triage_route(policy)
        lines.append(
            f"| {key} | {policy.stakes.value} | {t.target_error:.3f} | "
            f"{'none' if t.threshold is None else f'{t.threshold:.2f}'} | {t.auto_share:.3f} | "
            f"{_number(t.auto_error)} | {t.auto_items} | {route} |"
        )
    lines += ["", "![risk-coverage](risk_coverage.png)", ""]
    if evaluation.fairness:
        lines += [
            "## Fairness by group",
            "",
            "Groups of fewer items than the minimum are listed, not judged. A flagged group "
            "counts against its criterion's qualification.",
            "",
            "| criterion | group | value | items | QWK | SMD | flagged |",
            "|---|---|---|---:|---:|---:|---|",
        ]
        for row in evaluation.fairness:
            flag = "yes: " + row.why.replace("|", "\\|") if row.flagged else ""
            lines.append(
                f"| {row.criterion} | {row.group} | {row.value} | {row.items} | {_number(row.qwk)} | "
                f"{_number(row.smd)} | {flag} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_report(evaluation: Evaluation, folder: Path, title: str) -> Path:
    """Markdown, figures and the routing policy in `folder`; returns the report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    curves = {
        "before": (evaluation.raw_test_probabilities, evaluation.test_labels),
        "after": (evaluation.test_probabilities, evaluation.test_labels),
    }
    import matplotlib.pyplot as plt

    for figure, name in (
        (reliability_figure(curves), "reliability.png"),
        (risk_coverage_figure(evaluation), "risk_coverage.png"),
        (decision_reliability_figure(evaluation), "decision_reliability.png"),
    ):
        figure.savefig(folder / name, dpi=120)
        plt.close(figure)
    (folder / POLICY_FILE).write_text(evaluation.policy.model_dump_json(indent=2))
    evaluation.predictions.to_csv(folder / PREDICTIONS_FILE, index=False)
    report = folder / REPORT_FILE
    report.write_text(markdown(evaluation, title), encoding="utf-8")
    return report
