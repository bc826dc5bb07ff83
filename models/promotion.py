"""Whether a candidate version should replace the champion, judged by what the platform feels.

A higher test QWK mean alone can hide a version that decides fewer submissions alone, has lost
a credential's qualification, or awards credentials that reviewers would not. So, on the same
test split, a candidate is refused where it is not qualified for a credential the champion was
qualified for, where it auto-decides a credential's submissions less often than the champion
beyond sampling noise, or where it makes more false awards in all; otherwise it is promoted
where it is better on at least one of auto decisions, false awards and test QWK mean (so that
an identical retrain leaves the alias where it is). Runs from before the decision counts were
logged are compared on test QWK mean alone, as before.

The numbers are each run's metrics (eval/evaluate.py, `Evaluation.metrics`): per credential,
`decision_qualified`, `decision_auto` (auto decisions on the test split), `decision_submissions`
(complete test submissions), `decision_false_awards` and `decision_target`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import fisher_exact

from prescore.models.registry import PROMOTION_METRIC

SIGNIFICANT = 0.05  # a lower auto share with a smaller p-value is not sampling noise


@dataclass(frozen=True)
class CredentialDecisions:
    """One credential's decisions on a version's test split, as its run logged them."""

    credential_id: str
    qualified: bool
    auto: int
    submissions: int  # complete test submissions: the auto share's denominator
    false_awards: int
    target: float | None

    @property
    def auto_share(self) -> float:
        return self.auto / self.submissions if self.submissions else 0.0


def decision_metrics(metrics: dict[str, float]) -> dict[str, CredentialDecisions]:
    """Per credential, the decisions a run logged; empty for a run from before the counts."""
    prefix = "decision_submissions."
    logged = sorted(key.removeprefix(prefix) for key in metrics if key.startswith(prefix))
    credentials = [credential for credential in logged if f"decision_auto.{credential}" in metrics]
    return {
        credential: CredentialDecisions(
            credential_id=credential,
            qualified=metrics.get(f"decision_qualified.{credential}", 0.0) == 1.0,
            auto=int(metrics[f"decision_auto.{credential}"]),
            submissions=int(metrics[f"decision_submissions.{credential}"]),
            false_awards=int(metrics.get(f"decision_false_awards.{credential}", 0.0)),
            target=metrics.get(f"decision_target.{credential}"),
        )
        for credential in credentials
    }


def lower_auto_share_p(candidate: CredentialDecisions, champion: CredentialDecisions) -> float:
    """One-sided Fisher's exact test (scipy.stats.fisher_exact, alternative "less") of the
    candidate auto-deciding a smaller share than the champion: how likely a gap this large, or
    larger, were if both auto-decided alike. Both are measured on the same test submissions,
    whose routes are correlated; the test treats them as independent samples, which errs
    towards letting the candidate through, never towards refusing it on noise."""
    table = np.array(
        [
            [candidate.auto, candidate.submissions - candidate.auto],
            [champion.auto, champion.submissions - champion.auto],
        ]
    )
    return float(fisher_exact(table, alternative="less").pvalue)


def _share(side: dict[str, CredentialDecisions]) -> str:
    auto = sum(c.auto for c in side.values())
    submissions = sum(c.submissions for c in side.values())
    return f"{auto}/{submissions}"


def judge(
    candidate: dict[str, float], champion: dict[str, float], metric: str = PROMOTION_METRIC
) -> tuple[bool, list[str]]:
    """Whether the candidate replaces the champion, given both runs' metrics on the same test
    split, and why: every refusal that applies, or every way it is better."""
    margin = candidate[metric] - champion.get(metric, float("-inf"))
    ours, theirs = decision_metrics(candidate), decision_metrics(champion)
    if not ours or not theirs:
        missing = " and ".join(
            name for name, side in (("the candidate", ours), ("the champion", theirs)) if not side
        )
        older = f"{missing} logged no decision counts (trained before they were), so {metric} "
        if margin > 0:
            return True, [older + f"alone decides: it is higher by {margin:.4f}"]
        return False, [older + f"alone decides: it is not higher ({margin:+.4f})"]
    refusals = []
    for credential, held in sorted(theirs.items()):
        mine = ours.get(credential)
        if held.qualified and not (mine is not None and mine.qualified):
            refusals.append(f"it is not qualified to decide {credential}, where the champion is")
        if mine is None:
            continue
        p = lower_auto_share_p(mine, held)
        if p < SIGNIFICANT:
            refusals.append(
                f"it auto-decides less of {credential}: {mine.auto_share:.1%} "
                f"({mine.auto}/{mine.submissions}) against {held.auto_share:.1%} "
                f"({held.auto}/{held.submissions}), one-sided Fisher's exact p = {p:.3g}"
            )
    false_awards = sum(c.false_awards for c in ours.values())
    champion_false_awards = sum(c.false_awards for c in theirs.values())
    if false_awards > champion_false_awards:
        refusals.append(
            f"it makes more false awards on the test split: {false_awards} against "
            f"{champion_false_awards}"
        )
    if refusals:
        return False, refusals
    auto = sum(c.auto for c in ours.values())
    champion_auto = sum(c.auto for c in theirs.values())
    better = []
    if auto > champion_auto:
        better.append(f"it auto-decides more: {_share(ours)} against {_share(theirs)}")
    if false_awards < champion_false_awards:
        better.append(f"fewer false awards: {false_awards} against {champion_false_awards}")
    if margin > 0:
        better.append(f"{metric} is higher by {margin:.4f}")
    if better:
        return True, better
    return False, [
        f"it is no better: auto decisions {_share(ours)} against {_share(theirs)}, false awards "
        f"{false_awards} against {champion_false_awards}, {metric} {margin:+.4f}"
    ]
