"""`prescore train | promote | models`: the ML engineer's loop over MLflow runs and the registry."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from prescore import defaults
from prescore.data.problems import InputError
from prescore.data_cli import print_problems
from prescore.model_option import model_option, named_version, read_model

console = Console()


def train(
    config: Path = typer.Option(
        ..., "--config", "-c", help="experiment config, e.g. experiments/quickstart.yaml"
    ),
    no_track: bool = typer.Option(
        False, "--no-track", help="fit and evaluate only: no MLflow run, no registered version"
    ),
    report: Path = typer.Option(
        Path("reports/untracked"), help="with --no-track: folder for the evaluation report"
    ),
) -> None:
    """Fit the configured scorer, log the run to MLflow and register a new model version."""
    from prescore.training.config import load_config

    try:
        experiment = load_config(config)
        if no_track:
            train_untracked(experiment, report)
            return
        from prescore.training.run import train as run_training

        result = run_training(experiment, config)
    except InputError as error:
        print_problems(error.problems, console)
        raise typer.Exit(1) from None
    if result is None:
        return  # a non-main process of a distributed run
    print_train_result(result)


def train_untracked(experiment: object, report: Path) -> None:
    """Fit and measure without MLflow, for machines without the tracking stack."""
    import json

    from prescore.data.load import load_evidence
    from prescore.training.config import ExperimentConfig
    from prescore.training.fit import fit_and_report

    assert isinstance(experiment, ExperimentConfig)
    metrics = fit_and_report(experiment, load_evidence(experiment.data), report)
    (report / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    print_metrics_table(f"{experiment.model_name} (not tracked)", metrics)
    console.print(f"Fitted in {metrics['fit_seconds']:.1f}s. Report: {report}/evaluation.md")


def add_reviewer_agreement(report: Path, database: str, min_qwk: float) -> None:
    """Append the weekly model-vs-reviewer table and the audit error of auto decisions to the
    report; say so loudly on drift and on audits above their target."""
    from prescore.eval.drift import (
        audit_decision_error,
        audit_markdown,
        markdown,
        reviewer_agreement,
    )
    from prescore.review.queue import ReviewQueue

    min_items = 20
    queue = ReviewQueue(database)
    rows = reviewer_agreement(queue.reviewed_decisions(), min_qwk, min_items)
    audits = audit_decision_error(queue.reviewed_submissions())
    with report.open("a", encoding="utf-8") as sink:
        sink.write("\n" + markdown(rows, min_qwk, min_items))
        sink.write("\n" + audit_markdown(audits))
    for row in (r for r in rows if r.alarm):
        console.print(
            f"[red]Drift:[/red] {row.criterion} {row.week} ({row.sample}): QWK {row.qwk:.3f} "
            f"with reviewers on {row.items} items, below {min_qwk:.2f}"
        )
    for audit in (a for a in audits if a.warning):
        console.print(
            f"[red]Audit:[/red] {audit.credential_id} (version {audit.model_version}): reviewers "
            f"overturned {audit.errors} of {audit.audits} auto decisions ({audit.error:.1%}), "
            f"above the target error {audit.target_error:.1%}: {audit.verdict()}"
        )


def print_train_result(result: object) -> None:
    from prescore.training.run import TrainResult

    assert isinstance(result, TrainResult)
    print_metrics_table(
        f"{result.model_name} version {result.version} (run {result.run_id})", result.metrics
    )
    from prescore.models.registry import tracking_uri

    console.print(
        f"Fitted in {result.fit_seconds:.1f}s. See it with: "
        f"mlflow ui --backend-store-uri {tracking_uri()}",
        soft_wrap=True,
    )


def print_metrics_table(title: str, metrics: dict[str, float]) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("criterion")
    names = ("qwk", "exact", "adjacent")
    for name in names:
        table.add_column(f"test {name}", justify="right")
    criteria = sorted({k.split(".", 1)[1] for k in metrics if k.startswith("test_qwk.")})
    for criterion in criteria:
        table.add_row(
            criterion,
            *(f"{metrics.get(f'test_{n}.{criterion}', float('nan')):.3f}" for n in names),
        )
    table.add_row(
        "[bold]mean[/bold]",
        *(f"{metrics.get(f'test_{n}_mean', float('nan')):.3f}" for n in names),
    )
    console.print(table)


def promote(
    model: str = model_option(defaults.MODEL_NAME, "NAME alone: its newest version"),
) -> None:
    """Move the `champion` alias to a version, only if it beats the champion on held-out data."""
    from mlflow.exceptions import MlflowException

    from prescore.models.registry import configure_tracking, registered_version
    from prescore.models.registry import promote as run_promotion

    ref = read_model(model)
    model = ref.name
    configure_tracking()
    try:
        version = ref.reference
        if version is not None and not ref.is_version:  # an alias: the version it names
            version = str(registered_version(ref.name, version).version)
        outcome = run_promotion(model, version)
    except MlflowException:
        assert ref.reference is not None
        console.print(f"[red]{missing_version_message(ref.name, ref.reference)}[/red]")
        raise typer.Exit(1) from None
    except LookupError as error:
        console.print(escape(str(error)), style="red")
        raise typer.Exit(1) from None
    if outcome.champion is not None and outcome.champion.version != outcome.candidate.version:
        print_promotion_table(outcome.candidate, outcome.champion)
    verdict = "promoted to champion" if outcome.promoted else "not promoted"
    console.print(f"{model} version {outcome.candidate.version} {verdict}:")
    for reason in outcome.reasons:
        console.print(f"  - {escape(reason)}")


def print_promotion_table(candidate: object, champion: object) -> None:
    """Champion and candidate side by side, per credential: what promotion judged."""
    from prescore.models.promotion import (
        PROMOTION_METRIC,
        SIGNIFICANT,
        decision_metrics,
        lower_auto_share_p,
    )
    from prescore.models.registry import VersionSummary

    assert isinstance(candidate, VersionSummary) and isinstance(champion, VersionSummary)
    old, new = f"v{champion.version}", f"v{candidate.version}"
    theirs, ours = decision_metrics(champion.metrics), decision_metrics(candidate.metrics)
    table = Table(
        title=f"champion {old} against candidate {new}, on the same test split",
        title_justify="left",
    )
    table.add_column("credential")
    table.add_column(f"qualified {old} / {new}")
    table.add_column(f"auto share {old}", justify="right")
    table.add_column(f"auto share {new}", justify="right")
    table.add_column("lower? (Fisher p)", justify="right")
    table.add_column(f"false awards {old} / {new}", justify="right")

    def share(auto: int, submissions: int) -> str:
        return f"{auto / submissions if submissions else 0:.1%} ({auto}/{submissions})"

    for credential in sorted(theirs.keys() | ours.keys()):
        held, mine = theirs.get(credential), ours.get(credential)
        p = lower_auto_share_p(mine, held) if held and mine else None
        table.add_row(
            credential,
            " / ".join(
                "-" if side is None else ("yes" if side.qualified else "no")
                for side in (held, mine)
            ),
            "-" if held is None else share(held.auto, held.submissions),
            "-" if mine is None else share(mine.auto, mine.submissions),
            "" if p is None else (f"[red]{p:.3g}[/red]" if p < SIGNIFICANT else f"{p:.3g}"),
            " / ".join("-" if s is None else str(s.false_awards) for s in (held, mine)),
        )
    if theirs and ours:
        table.add_row(
            "[bold]all[/bold]",
            "",
            share(
                sum(c.auto for c in theirs.values()), sum(c.submissions for c in theirs.values())
            ),
            share(sum(c.auto for c in ours.values()), sum(c.submissions for c in ours.values())),
            "",
            f"{sum(c.false_awards for c in theirs.values())} / "
            f"{sum(c.false_awards for c in ours.values())}",
        )
    qwk = [v.metrics.get(PROMOTION_METRIC) for v in (champion, candidate)]
    table.add_row(
        f"[bold]{PROMOTION_METRIC}[/bold]",
        "",
        *("-" if value is None else f"{value:.3f}" for value in qwk),
        "",
        "",
    )
    console.print(table)


def missing_version_message(model: str, alias: str) -> str:
    """Why `model` has no version `alias` names, and the command that gives it one."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    versions = sorted(
        (str(v.version) for v in client.search_model_versions(f"name='{model}'")), key=int
    )
    if not versions:
        known = [m.name for m in client.search_registered_models()]
        if model in known:
            return f"{model} has no versions yet: train one with `prescore train --config ...`"
        if known:
            return (
                f"{model} is not in the registry (registered: {', '.join(known)}); "
                "pass one with --model NAME, or train it with `prescore train --config ...`"
            )
        return (
            "nothing is registered yet: run `prescore train --config ...` or `prescore quickstart`"
        )
    listed = ", ".join(versions)
    if alias.isdigit():
        return f"{model} has no version {alias} (versions: {listed}); `prescore models` lists them"
    aliases = sorted({a for v in versions for a in client.get_model_version(model, v).aliases})
    has = f"aliases: {', '.join(aliases)}" if aliases else "no aliases"
    return (
        f"{model} has version(s) {listed} but no {alias!r} ({has}); "
        f"run `prescore promote --model {model}` to make the best one champion, or name a "
        "version by its number"
    )


def models(
    model: str = typer.Option(defaults.MODEL_NAME, "--model", "-m", help="registered model name"),
) -> None:
    """List a registered model's versions, aliases and key held-out metrics."""
    if read_model(model).reference is not None:
        raise typer.BadParameter("lists every version: give the NAME alone", param_hint="--model")
    from prescore.models.registry import configure_tracking, list_versions

    configure_tracking()
    versions = list_versions(model)
    if not versions:
        console.print(f"No versions of {model!r} yet; train one with `prescore train`.")
        raise typer.Exit(1)
    table = Table(title=model, title_justify="left")
    for column in (
        "version",
        "aliases",
        "scorer",
        "test qwk",
        "test exact",
        "test adjacent",
        "fit s",
        "run",
    ):
        table.add_column(column)
    for v in versions:
        m = v.metrics
        table.add_row(
            v.version,
            ", ".join(v.aliases),
            v.scorer,
            *(
                f"{m[k]:.3f}" if k in m else ""
                for k in ("test_qwk_mean", "test_exact_mean", "test_adjacent_mean")
            ),
            f"{m.get('fit_seconds', float('nan')):.0f}",
            v.run_id[:8],
        )
    console.print(table)


def evaluate(
    model: str | None = model_option(
        None, "NAME alone: its champion [default: the config's model, its champion]"
    ),
    config: Path = typer.Option(
        defaults.QUICKSTART_CONFIG,
        "--config",
        "-c",
        help="config whose data and gates to use",
    ),
    out: Path = typer.Option(Path("reports"), help="folder for the report, figures and policy"),
    reviews: str | None = typer.Option(
        None,
        envvar="PRESCORE_REVIEW_DB",
        help="review queue (SQLAlchemy URL): add model vs reviewer agreement over time",
    ),
) -> None:
    """Measure a registered model on held-out data, fit its routing policy, write the report."""
    import mlflow

    from prescore.data.load import load_evidence
    from prescore.eval.evaluate import evaluate as run_evaluation
    from prescore.eval.report import write_report
    from prescore.models.registry import fetch
    from prescore.training.config import load_config
    from prescore.training.tracking import experiment_id

    try:
        experiment = load_config(config)
        evidence = load_evidence(experiment.data)
    except InputError as error:
        print_problems(error.problems, console)
        raise typer.Exit(1) from None
    ref = read_model(model or experiment.model_name).or_alias()
    assert ref.reference is not None
    try:
        scorer = fetch(ref.name, ref.reference).scorer()
    except mlflow.exceptions.MlflowException:
        why = missing_version_message(ref.name, ref.reference)
        console.print(f"[red]Cannot load {ref.uri}[/red]: {why}", soft_wrap=True)
        raise typer.Exit(1) from None
    with console.status("Evaluating..."):
        evaluation = run_evaluation(scorer, evidence, experiment.evaluation)
    folder = out / f"{ref.name}-{ref.reference}"
    report = write_report(evaluation, folder, f"{ref}: evaluation")
    if reviews:
        add_reviewer_agreement(report, reviews, experiment.evaluation.gates.min_qwk)
    with mlflow.start_run(experiment_id=experiment_id(experiment.name), run_name=f"evaluate {ref}"):
        mlflow.set_tags({"prescore.evaluates": ref.uri})
        mlflow.log_metrics(evaluation.metrics())
        mlflow.log_artifacts(str(folder), artifact_path="evaluation")
    print_evaluation(evaluation)
    console.print(f"Report: {report} (also logged to MLflow)")


def print_evaluation(evaluation: object) -> None:
    from prescore.eval.evaluate import Evaluation

    assert isinstance(evaluation, Evaluation)
    table = Table(title="Held-out agreement and triage", title_justify="left")
    for column in (
        "criterion",
        "QWK",
        "qualified",
        "target err",
        "threshold",
        "auto share",
        "auto err",
    ):
        table.add_column(column)
    for key, a in evaluation.agreement.items():
        t = evaluation.triage.get(key)
        table.add_row(
            key,
            f"{a.qwk:.3f}",
            "yes" if a.qualified else "no",
            f"{t.target_error:.3f}" if t else "",
            "none" if not t or t.threshold is None else f"{t.threshold:.2f}",
            f"{t.auto_share:.3f}" if t else "",
            "" if not t or t.auto_items == 0 else f"{t.auto_error:.3f}",
        )
    console.print(table)


def export_onnx(
    model: str = model_option(..., "the version to give ONNX copies"),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="the experiment config it was trained with [default: the one logged with its run]",
    ),
    int8: bool = typer.Option(True, help="also an int8 (block-wise quantized) copy"),
) -> None:
    """Add ONNX copies (and the bf16 check) to a version registered before they existed:
    exported, checked against PyTorch on its calibration split and stored with it. No
    retraining; serving picks them up on its next load or reload."""
    from mlflow.exceptions import MlflowException

    from prescore.models.onnx_copies import BF16, ONNX_FP32, ONNX_INT8
    from prescore.models.registry import configure_tracking, registered_version
    from prescore.training.config import load_config
    from prescore.training.run import add_onnx_copies

    ref = named_version(read_model(model))
    model, version = ref.name, str(ref.reference)
    try:
        if not ref.is_version:
            configure_tracking()
            version = str(registered_version(model, version).version)
    except MlflowException:
        console.print(f"[red]{missing_version_message(model, version)}[/red]")
        raise typer.Exit(1) from None
    try:
        experiment = load_config(config) if config is not None else None
        copies = add_onnx_copies(
            model, version, experiment, (ONNX_FP32, ONNX_INT8, BF16) if int8 else (ONNX_FP32, BF16)
        )
    except InputError as error:
        print_problems(error.problems, console)
        raise typer.Exit(1) from None
    except (LookupError, ValueError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    table = Table(
        "copy",
        "calibration: same level",
        "QWK",
        "largest p difference",
        "test: same level",
        "speed / PyTorch",
        "verdict",
    )
    for runtime, check in copies.copies.items():
        speed = copies.speed_vs_torch(runtime)
        table.add_row(
            runtime,
            f"{check.calibration.level_agreement:.2%} of {check.calibration.items}",
            f"{check.calibration.qwk:.3f}",
            f"{check.calibration.max_probability_difference:.4f}",
            f"{check.test.level_agreement:.2%} of {check.test.items}" if check.test else "-",
            "-" if speed is None else f"{speed:.2f}x",
            "passed" if check.passed else f"not used: {check.reason}",
        )
    console.print(table)
    console.print(
        f"Stored with {model} version {version}; serving here now takes the fastest that "
        f"passed, {copies.usable()[0]} (set PRESCORE_RUNTIME=torch-fp32 to force PyTorch)."
    )
