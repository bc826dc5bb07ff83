"""The `prescore` command: one Typer app over the stages (data, training, eval, serving)."""

from __future__ import annotations

import os

# Nothing is fetched from a model hub at run time; HF_HUB_OFFLINE=0 lets an engineer opt in.
# Set before anything imports huggingface_hub, which reads it once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402

from prescore import (  # noqa: E402
    audits_cli,
    db_cli,
    defaults,  # noqa: E402
    forget_cli,
    predict_cli,
    serving_cli,
    training_cli,
    webhooks_cli,
)
from prescore.checkout import bench_app  # noqa: E402
from prescore.data.problems import InputError  # noqa: E402
from prescore.data_cli import app as data_app  # noqa: E402
from prescore.data_cli import print_load_summary, print_problems  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

    from prescore.demo import DemoRequest
    from prescore.eval.routing import Route

app = typer.Typer(
    name="prescore",
    help="Pre-score educator micro-credential evidence: load and check scored evidence, "
    "train scorers, evaluate and route, serve predictions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.add_typer(bench_app(), name="bench")
app.command()(training_cli.train)
app.command()(training_cli.promote)
app.command()(training_cli.models)
app.command()(training_cli.evaluate)
app.command(name="export-onnx")(training_cli.export_onnx)
app.command()(predict_cli.predict)
app.command()(serving_cli.serve)
app.command(name="export-reviews")(serving_cli.export_reviews)
app.command()(forget_cli.forget)
reviewers = typer.Typer(help="Reviewer accounts for the triage page.", no_args_is_help=True)
reviewers.command(name="add")(serving_cli.add_reviewer)
reviewers.command(name="calibrate")(serving_cli.calibrate)
reviewers.command(name="report")(serving_cli.report_reviewers)
app.add_typer(reviewers, name="reviewers")
app.add_typer(audits_cli.app, name="audits")
app.add_typer(db_cli.app, name="db")
app.add_typer(webhooks_cli.app, name="webhooks")
console = Console()


@app.command()
def quickstart(
    config: Path = typer.Option(defaults.QUICKSTART_CONFIG, help="experiment config to run"),
    serve: bool = typer.Option(True, help="end by serving the champion on port 3000"),
    port: int = typer.Option(3000, help="HTTP port for the service"),
) -> None:
    """The main job on the bundled sample: check, train, register, promote, then serve."""
    from prescore.data.load import load_evidence
    from prescore.training.config import load_config
    from prescore.training.run import train

    try:
        experiment = load_config(config)
        with console.status("Loading and checking evidence..."):
            evidence = load_evidence(experiment.data)
        print_load_summary(evidence, console)
        console.print(f"Training {experiment.scorer.kind} scorer '{experiment.name}'...")
        result = train(experiment, config, evidence)
    except InputError as error:
        print_problems(error.problems, console)
        raise typer.Exit(1) from None
    assert result is not None  # quickstart runs in one process
    training_cli.print_train_result(result)
    training_cli.promote(model=f"{result.model_name}@{result.version}")
    if serve:
        examples = demo_examples(result.model_name, evidence.splits["test"])
        serving_cli.run_service(
            model=result.model_name,
            alias=defaults.MODEL_ALIAS,
            host="127.0.0.1",
            port=port,
            api_key_file=serving_cli.DEFAULT_KEY_FILE,
            max_items=defaults.MAX_ITEMS_PER_REQUEST,
            max_text_chars=defaults.MAX_TEXT_CHARS,
            review_db=os.environ.get("PRESCORE_REVIEW_DB", defaults.REVIEW_DB),
            ready_timeout=defaults.READY_TIMEOUT_SECONDS,
            examples=examples,
        )


def demo_examples(model: str, test: pd.DataFrame) -> dict[Route, DemoRequest]:
    """A held-out submission the champion decides alone and one it sends to a human; where
    none goes auto, say why (the policy's own words), never loosen a gate to find one."""
    from prescore.demo import pick_demo_requests
    from prescore.eval.routing import Route
    from prescore.serving.scoring import ScoringModel

    with console.status("Finding a held-out submission of each route..."):
        examples = pick_demo_requests(model, defaults.MODEL_ALIAS, test)
    if Route.auto not in examples:
        policy = ScoringModel.from_registry(model, defaults.MODEL_ALIAS).policy
        why = [
            f"{credential}: " + "; ".join(d.qualification_failures or [f"threshold {d.threshold}"])
            for credential, d in policy.decisions.items()
        ]
        console.print(
            "[yellow]No held-out submission of this sample is decided automatically[/yellow]: "
            + (" | ".join(why) or "the model decides no credential")
            + ". The README's section on the quick-start shows one on a public set."
        )
    return examples


if __name__ == "__main__":
    app()
