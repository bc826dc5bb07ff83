"""`prescore predict`: score a file of evidence offline with a registered model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from prescore.data.problems import InputError
from prescore.data_cli import print_problems
from prescore.model_option import model_option, read_model
from prescore.progress import StepProgress

console = Console()


def predict(
    model: str = model_option(..., "NAME alone: its champion"),
    source: Path = typer.Option(
        ..., "--input", "-i", help="evidence to score: CSV, TSV, JSON Lines or Parquet"
    ),
    target: Path = typer.Option(
        ..., "--output", "-o", help="where to write the scores; format from the suffix"
    ),
    batch_items: int = typer.Option(64, min=1, help="items per model call"),
) -> None:
    """Score a file offline: each row with its level, expected value, probabilities,
    confidence, prediction set, route and reasons, and its submission's decision. The same
    answers as POST /score; the evidence text is never printed."""
    import mlflow

    from prescore.models.registry import CHAMPION, configure_tracking
    from prescore.serving.offline import (
        check_output,
        read_items,
        score_file,
        scored_rows,
        summary,
        unknown_criteria,
        write_rows,
    )
    from prescore.serving.scoring import ScoringModel

    ref = read_model(model).or_alias(CHAMPION)
    name, reference = ref.name, str(ref.reference)
    try:
        check_output(target)
        rows, items = read_items(source)
    except InputError as error:
        print_problems(error.problems, console)
        raise typer.Exit(1) from None
    configure_tracking()
    try:
        scoring = ScoringModel.from_registry(name, reference)
    except (mlflow.exceptions.MlflowException, FileNotFoundError) as error:
        message = getattr(error, "message", str(error))
        console.print(
            f"[red]Cannot load {name}@{reference}[/red]: {message}. List versions with "
            f"`prescore models --model {name}`; point the champion at one with "
            f"`prescore promote --model {name}`, or name a version: --model {name}@1.",
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    try:
        unknown_criteria(source, items, scoring)
    except InputError as error:
        print_problems(error.problems, console)
        raise typer.Exit(1) from None
    with StepProgress("Scoring evidence", len(items), transient=True, console=console) as progress:
        scores, decisions = score_file(scoring, items, batch_items, progress.advance)
    write_rows(scored_rows(rows, scores, decisions), target)
    done = summary(scores, decisions)
    console.print(
        f"Scored {done.items} items ({done.auto} auto) and {done.submissions} submissions "
        f"({done.auto_decisions} decided auto) with {scoring.name} version {scoring.version}. "
        f"Wrote {target}",
        soft_wrap=True,
    )
