"""`prescore train | promote | models`: the ML engineer's loop over MLflow runs and the registry."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from prescore.data.problems import InputError
from prescore.data_cli import print_problems

console = Console()


def train(
    config: Path = typer.Option(
        ..., "--config", "-c", help="experiment config, e.g. experiments/quickstart.yaml"
    ),
) -> None:
    """Fit the configured scorer, log the run to MLflow and register a new model version."""
    from prescore.training.config import load_config
    from prescore.training.run import train as run_training

    try:
        experiment = load_config(config)
        result = run_training(experiment, config)
    except InputError as error:
        print_problems(error.problems, console)
        raise typer.Exit(1) from None
    if result is None:
        return  # a non-main process of a distributed run
    print_train_result(result)


def print_train_result(result: object) -> None:
    from prescore.training.run import TrainResult

    assert isinstance(result, TrainResult)
    table = Table(
        title=f"{result.model_name} version {result.version} (run {result.run_id})",
        title_justify="left",
    )
    table.add_column("criterion")
    for name in ("qwk", "exact", "adjacent"):
        table.add_column(f"test {name}", justify="right")
    criteria = sorted({k.split(".", 1)[1] for k in result.metrics if k.startswith("test_qwk.")})
    for criterion in criteria:
        table.add_row(
            criterion,
            *(
                f"{result.metrics.get(f'test_{n}.{criterion}', float('nan')):.3f}"
                for n in ("qwk", "exact", "adjacent")
            ),
        )
    table.add_row(
        "[bold]mean[/bold]",
        *(
            f"{result.metrics.get(f'test_{n}_mean', float('nan')):.3f}"
            for n in ("qwk", "exact", "adjacent")
        ),
    )
    console.print(table)
    console.print(
        f"Fitted in {result.fit_seconds:.1f}s. See it with: mlflow ui --backend-store-uri sqlite:///mlflow.db"
    )


def promote(
    model: str = typer.Option("prescore-quickstart", help="registered model name"),
    version: str | None = typer.Option(None, help="version to promote [default: the newest]"),
) -> None:
    """Move the `champion` alias to a version, only if it beats the champion on held-out data."""
    from prescore.training.registry import promote as run_promotion
    from prescore.training.tracking import configure_tracking

    configure_tracking()
    try:
        outcome = run_promotion(model, version)
    except LookupError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    verdict = "promoted to champion" if outcome.promoted else "not promoted"
    console.print(f"{model} version {outcome.candidate.version} {verdict}: {outcome.reason}.")


def models(model: str = typer.Option("prescore-quickstart", help="registered model name")) -> None:
    """List a registered model's versions, aliases and key held-out metrics."""
    from prescore.training.registry import list_versions
    from prescore.training.tracking import configure_tracking

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
