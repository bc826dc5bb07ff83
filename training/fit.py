"""Fit a configured scorer and measure it, with no tracking: the part of a run MLflow wraps.

Kept apart from run.py so that a machine without the tracking stack (a lent GPU, a quick
try of a config) can fit and evaluate with `prescore train --no-track`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from transformers import TrainerCallback

from prescore.data.load import EvidenceSet
from prescore.data.problems import InputError, Problem
from prescore.eval.evaluate import Evaluation, evaluate
from prescore.eval.protocol import selection_rows
from prescore.eval.report import write_report
from prescore.models.scorer import EvalSet, Scorer
from prescore.progress import StepProgress
from prescore.training.config import ExperimentConfig


class RichProgress(TrainerCallback):
    """Progress over optimisation steps, on the main process only: a rich bar on a terminal,
    plain lines ("fine-tuning: step 120/400 (30%)") in a redirected log."""

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.progress = StepProgress(
            "Fine-tuning", state.max_steps, unit="step", disable=not state.is_world_process_zero
        )
        self.progress.start()

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.progress.update(state.global_step)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **_: Any
    ) -> None:
        losses = {k: v for k, v in (logs or {}).items() if k in ("loss", "eval_loss")}
        if losses and state.is_world_process_zero:
            shown = ", ".join(
                f"{'calibration' if k == 'eval_loss' else 'train'} loss {v:.4f}"
                for k, v in losses.items()
            )
            self.progress.log(f"epoch {state.epoch:.0f}: {shown}")

    def on_train_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.progress.stop()


def build_scorer(config: ExperimentConfig, evidence: EvidenceSet) -> Scorer:
    """The configured scorer, unfitted; refused when there is nothing to train on."""
    splits = evidence.splits
    if len(splits["train"]) == 0:
        message = "no evidence lands in the train split: raise data.split.train, or check consent"
        raise InputError([Problem(str(config.data.path), None, "data.split", message)])
    return config.scorer.build(config.seed)


def calibration_set(evidence: EvidenceSet, certification_share: float) -> EvalSet | None:
    """The calibration rows a model may be selected on, as (X, y): those not held to certify
    thresholds (eval/protocol.py); None where there are none."""
    calibration = evidence.splits["calibration"]
    chosen = calibration[selection_rows(list(calibration["educator_id"]), certification_share)]
    if not len(chosen):
        return None
    return chosen, chosen["label"].to_numpy()


def fit_scorer(
    scorer: Scorer,
    evidence: EvidenceSet,
    certification_share: float,
    callbacks: list[Any] | None = None,
) -> float:
    """Fit on the train split, the selection rows of the calibration split as eval set, with
    Trainer `callbacks` (default: a progress bar); returns the seconds it took."""
    train = evidence.splits["train"]
    started = time.perf_counter()
    scorer.fit(
        train,
        train["label"].to_numpy(),
        eval_set=calibration_set(evidence, certification_share),
        callbacks=list(callbacks or [RichProgress()]),
    )
    return time.perf_counter() - started


def measure(
    scorer: Scorer, evidence: EvidenceSet, config: ExperimentConfig, fit_seconds: float
) -> tuple[Evaluation, dict[str, float]]:
    """Evaluate once (calibration, thresholds, test agreement) and add the fit's costs."""
    evaluation = evaluate(scorer, evidence, config.evaluation)
    if evaluation.language is not None and evaluation.language.warning:
        Console(stderr=True).print(f"[yellow]Warning:[/yellow] {evaluation.language.warning}")
    metrics = evaluation.metrics()
    metrics["fit_seconds"] = fit_seconds
    metrics["fit_seconds_per_1000_items"] = 1000 * fit_seconds / len(evidence.splits["train"])
    metrics.update(scorer.fit_summary())
    return evaluation, metrics


def fit_and_report(
    config: ExperimentConfig, evidence: EvidenceSet, report_folder: Path
) -> dict[str, float]:
    """Fit, evaluate and write the evaluation report to a folder; nothing is tracked."""
    scorer = build_scorer(config, evidence)
    fit_seconds = fit_scorer(scorer, evidence, config.evaluation.certification_share)
    evaluation, metrics = measure(scorer, evidence, config, fit_seconds)
    write_report(evaluation, report_folder, f"{config.model_name}: evaluation (not tracked)")
    return metrics
