"""The tables of benchmark fold results: accuracy, triage, credential decisions, calibration
and speed, in Markdown for eval/RESULTS.md, as headline figures in JSON, or logged to MLflow.

They read only fold results (bench/accuracy.py's JSON lines), never the data sets, so anyone
can regenerate them from eval/results/.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.accuracy import FoldResult

ANCHORS = {
    "asap-aes": "human-human about 0.75 mean QWK; Taghipour & Ng 2016: 0.761; "
    "R2BERT (Yang et al. 2020): 0.794",
    "asap-sas": "human-human: Score1 vs Score2 on the training set (the leaderboard has one).",
    "feedback-prize-ell": "winning Kaggle MCRMSE about 0.43 (lower is better)",
}


def mean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def fmt(value: float, digits: int = 3) -> str:
    return "" if math.isnan(value) else f"{value:.{digits}f}"


def average(runs: list[FoldResult], scorer: str, key: str, attribute: str) -> float:
    """One criterion's figure for one scorer, averaged over the folds that have it."""
    return mean([getattr(r, attribute).get(key, math.nan) for r in runs if r.scorer == scorer])


def accuracy_table(runs: list[FoldResult], scorers: list[str], with_rmse: bool) -> list[str]:
    keys = sorted({k for r in runs for k in r.qwk})
    header = ["criterion", *[f"{s} QWK" for s in scorers], "human-human QWK"]
    header += [f"{s} RMSE" for s in scorers] if with_rmse else []
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for key in keys:
        cells = [fmt(average(runs, s, key, "qwk")) for s in scorers]
        cells.append(fmt(average(runs, scorers[0], key, "human_qwk")))
        if with_rmse:
            cells += [fmt(average(runs, s, key, "rmse")) for s in scorers]
        lines.append("| " + " | ".join([key, *cells]) + " |")
    means = [f"**{fmt(mean([average(runs, s, k, 'qwk') for k in keys]))}**" for s in scorers]
    means.append(fmt(mean([average(runs, scorers[0], k, "human_qwk") for k in keys])))
    if with_rmse:
        means += [
            f"**{fmt(mean([average(runs, s, k, 'rmse') for k in keys]))}** (MCRMSE)"
            for s in scorers
        ]
    lines.append("| " + " | ".join(["mean", *means]) + " |")
    return lines


def triage_table(runs: list[FoldResult], scorers: list[str]) -> list[str]:
    lines = [
        "| scorer | test items | auto share | error among auto | mean target error "
        "| criterion-folds with auto items | of them over their target |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for scorer in scorers:
        items = auto = wrong = 0.0
        targets = []
        with_auto = over = 0
        for run in (r for r in runs if r.scorer == scorer):
            for key, count in run.test_items.items():
                automatic = run.auto_share.get(key, 0.0) * count
                items += count
                auto += automatic
                error = run.auto_error.get(key, math.nan)
                wrong += 0.0 if math.isnan(error) else automatic * error
                targets.append(run.target_error.get(key, math.nan))
                if automatic and not math.isnan(error):
                    with_auto += 1
                    over += error > run.target_error.get(key, math.inf)
        lines.append(
            f"| {scorer} | {items:.0f} | {fmt(auto / items if items else math.nan)} | "
            f"{fmt(wrong / auto if auto else math.nan)} | {fmt(mean(targets))} | "
            f"{with_auto} | {over} |"
        )
    return lines


@dataclass(frozen=True)
class DecisionTotals:
    """One scorer's credential decisions over every fold of a benchmark."""

    submissions: int
    auto: int
    false_awards: int
    false_not_yet: int
    mean_target: float
    credential_folds_with_auto: int
    over_target: int

    @property
    def auto_share(self) -> float:
        return self.auto / self.submissions if self.submissions else math.nan

    @property
    def error(self) -> float:
        return (self.false_awards + self.false_not_yet) / self.auto if self.auto else math.nan


def decision_totals(runs: list[FoldResult], scorer: str) -> DecisionTotals:
    mine = [r for r in runs if r.scorer == scorer]
    submissions = auto = false_awards = false_not_yet = with_auto = over = 0
    targets = []
    for run in mine:
        for key, count in run.decision_submissions.items():
            automatic = run.decision_auto.get(key, 0)
            wrong = run.decision_false_awards.get(key, 0) + run.decision_false_not_yet.get(key, 0)
            submissions += count
            auto += automatic
            false_awards += run.decision_false_awards.get(key, 0)
            false_not_yet += run.decision_false_not_yet.get(key, 0)
            targets.append(run.decision_target.get(key, math.nan))
            if automatic:
                with_auto += 1
                over += wrong / automatic > run.decision_target.get(key, math.inf)
    return DecisionTotals(
        submissions, auto, false_awards, false_not_yet, mean(targets), with_auto, over
    )


def decision_table(runs: list[FoldResult], scorers: list[str]) -> list[str]:
    lines = [
        "| scorer | submissions | auto share | error among auto | false awards | false not yet "
        "| mean target | credential-folds with auto decisions | of them over their target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scorer in scorers:
        t = decision_totals(runs, scorer)
        lines.append(
            f"| {scorer} | {t.submissions} | {fmt(t.auto_share)} | {fmt(t.error)} | "
            f"{t.false_awards} | {t.false_not_yet} | {fmt(t.mean_target)} | "
            f"{t.credential_folds_with_auto} | {t.over_target} |"
        )
    return lines


def calibration_table(runs: list[FoldResult], scorers: list[str]) -> list[str]:
    """Each scorer's mean calibration QWK over criteria: the figure a choice between recipes
    may look at, where the test folds' figures may not."""
    keys = sorted({k for r in runs for k in r.calibration_qwk})
    lines = ["| scorer | mean calibration QWK | folds |", "|---|---:|---:|"]
    for scorer in scorers:
        figure = mean([average(runs, scorer, k, "calibration_qwk") for k in keys])
        folds = len({r.fold for r in runs if r.scorer == scorer and r.calibration_qwk})
        lines.append(f"| {scorer} | {fmt(figure)} | {folds} |")
    return lines


def speed_table(runs: list[FoldResult], scorers: list[str]) -> list[str]:
    lines = [
        "| scorer | hardware | fit s per 1,000 items | scored items/s |",
        "|---|---|---:|---:|",
    ]
    for scorer in scorers:
        mine = [r for r in runs if r.scorer == scorer]
        fit = 1000 * sum(r.fit_seconds for r in mine) / sum(r.train_items for r in mine)
        scored = sum(sum(r.test_items.values()) for r in mine) / sum(
            r.predict_seconds for r in mine
        )
        lines.append(f"| {scorer} | {mine[0].hardware} | {fit:.1f} | {scored:.0f} |")
    return lines


def table_order(scorer: str) -> tuple[int, str]:
    """The baseline first, the ensemble last, the rest as they come alphabetically."""
    return ({"tfidf": 0, "ensemble": 2}.get(scorer, 1), scorer)


def markdown(results: list[FoldResult]) -> str:
    """Accuracy, triage and speed tables, one section per benchmark."""
    lines: list[str] = []
    for benchmark in sorted({r.benchmark for r in results}):
        runs = [r for r in results if r.benchmark == benchmark]
        scorers = sorted({r.scorer for r in runs}, key=table_order)
        folds_seen = ", ".join(str(f) for f in sorted({r.fold for r in runs}))
        lines += [f"## {benchmark}", "", f"Folds: {folds_seen}. {ANCHORS.get(benchmark, '')}", ""]
        lines += accuracy_table(runs, scorers, with_rmse=benchmark == "feedback-prize-ell")
        lines += ["", "Triage on the held-out folds, thresholds fitted on calibration splits:", ""]
        lines += triage_table(runs, scorers)
        if any(r.decision_submissions for r in runs):
            lines += [
                "",
                "Credential decisions (one per submission) on the held-out folds, as the live "
                "policy routes them:",
                "",
            ]
            lines += decision_table(runs, scorers)
            lines += [
                "",
                "Each credential-fold's thresholds hold their target with 90% probability "
                "(delta 0.10), so about a tenth of the credential-folds with auto decisions may "
                "end over target on the test fold, and no more beyond chance.",
            ]
        if any(r.calibration_qwk for r in runs):
            lines += ["", "Mean QWK on the folds' calibration splits (choose recipes here):", ""]
            lines += calibration_table(runs, scorers)
        lines += ["", "Speed:", ""]
        lines += speed_table(runs, scorers)
        lines.append("")
    return "\n".join(lines)


def read_results(paths: list[Path]) -> list[FoldResult]:
    return [
        FoldResult.from_json(line)
        for path in paths
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def summary_metrics(runs: list[FoldResult]) -> dict[str, float]:
    """The headline numbers of one benchmark, per scorer, for MLflow."""
    metrics: dict[str, float] = {}
    keys = sorted({k for r in runs for k in r.qwk})
    for scorer in sorted({r.scorer for r in runs}):
        metrics[f"{scorer}.qwk_mean"] = mean([average(runs, scorer, k, "qwk") for k in keys])
        rmse = mean([average(runs, scorer, k, "rmse") for k in keys])
        if not math.isnan(rmse):
            metrics[f"{scorer}.mcrmse"] = rmse
        mine = [r for r in runs if r.scorer == scorer]
        items = sum(sum(r.test_items.values()) for r in mine)
        auto = sum(r.auto_share.get(k, 0.0) * n for r in mine for k, n in r.test_items.items())
        wrong = sum(
            r.auto_share.get(k, 0.0) * n * r.auto_error.get(k, 0.0)
            for r in mine
            for k, n in r.test_items.items()
            if not math.isnan(r.auto_error.get(k, math.nan))
        )
        metrics[f"{scorer}.item_auto_share"] = auto / items if items else 0.0
        metrics[f"{scorer}.item_error"] = wrong / auto if auto else math.nan
        if any(r.ece for r in mine):
            metrics[f"{scorer}.ece"] = mean([average(runs, scorer, k, "ece") for k in keys])
        decisions = decision_totals(runs, scorer)
        if decisions.submissions:
            metrics[f"{scorer}.decision_auto_share"] = decisions.auto_share
            metrics[f"{scorer}.decision_error"] = decisions.error
            metrics[f"{scorer}.decision_target"] = decisions.mean_target
            metrics[f"{scorer}.decision_credential_folds"] = float(
                len({(r.fold, k) for r in mine for k in r.decision_submissions})
            )
            metrics[f"{scorer}.decision_folds_over_target"] = float(decisions.over_target)
    human = mean([average(runs, runs[0].scorer, k, "human_qwk") for k in keys])
    if not math.isnan(human):
        metrics["human_human.qwk_mean"] = human
    return metrics


HEADLINE = (
    "qwk_mean",
    "mcrmse",
    "item_auto_share",
    "item_error",
    "decision_auto_share",
    "decision_error",
    "decision_target",
    "decision_credential_folds",
    "decision_folds_over_target",
    "ece",
)


def headline(results: list[FoldResult]) -> dict[str, dict[str, dict[str, float | None]]]:
    """benchmark -> scorer -> the headline figures (None where a figure does not apply, e.g.
    MCRMSE outside ELL, or an error rate with nothing decided automatically)."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for benchmark in sorted({r.benchmark for r in results}):
        metrics = summary_metrics([r for r in results if r.benchmark == benchmark])
        scorers = sorted({r.scorer for r in results if r.benchmark == benchmark}, key=table_order)
        out[benchmark] = {
            scorer: {
                name: (
                    None
                    if math.isnan(value := metrics.get(f"{scorer}.{name}", math.nan))
                    else round(value, 4)
                )
                for name in HEADLINE
                if (name != "mcrmse" or benchmark == "feedback-prize-ell")
                and (name != "ece" or f"{scorer}.ece" in metrics)
            }
            for scorer in scorers
        }
    return out


def log_results(results: list[FoldResult]) -> list[str]:
    """One MLflow run per benchmark (experiment bench-<name>): headline metrics, the tables
    and the fold results; returns the run ids."""
    import tempfile

    import mlflow

    from prescore.models.registry import configure_tracking
    from prescore.training.tracking import experiment_id

    configure_tracking()
    run_ids = []
    for benchmark in sorted({r.benchmark for r in results}):
        runs = [r for r in results if r.benchmark == benchmark]
        with mlflow.start_run(experiment_id=experiment_id(f"bench-{benchmark}")) as run:
            mlflow.set_tags(
                {
                    "prescore.benchmark": benchmark,
                    "hardware": ", ".join(sorted({r.hardware for r in runs})),
                    "folds": ",".join(str(f) for f in sorted({r.fold for r in runs})),
                }
            )
            mlflow.log_metrics(
                {k: v for k, v in summary_metrics(runs).items() if not math.isnan(v)}
            )
            with tempfile.TemporaryDirectory() as folder:
                (Path(folder) / "bench.md").write_text(markdown(runs))
                (Path(folder) / "results.jsonl").write_text(
                    "".join(r.to_json() + "\n" for r in runs)
                )
                mlflow.log_artifacts(folder, artifact_path="bench")
            run_ids.append(run.info.run_id)
    return run_ids
