"""The `prescore` command: one Typer app over the stages (data, training, eval, serving)."""

from __future__ import annotations

import os

# Nothing is fetched from a model hub at run time; HF_HUB_OFFLINE=0 lets an engineer opt in.
# Set before anything imports huggingface_hub, which reads it once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402

from prescore import training_cli  # noqa: E402
from prescore.data.problems import InputError  # noqa: E402
from prescore.data_cli import app as data_app  # noqa: E402
from prescore.data_cli import print_load_summary, print_problems  # noqa: E402

app = typer.Typer(
    name="prescore",
    help="Pre-score educator micro-credential evidence: load and check scored evidence, "
    "train scorers, evaluate and route, serve predictions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.command()(training_cli.train)
app.command()(training_cli.promote)
app.command()(training_cli.models)
app.command()(training_cli.evaluate)
console = Console()

QUICKSTART_CONFIG = Path(__file__).resolve().parent.parent / "experiments" / "quickstart.yaml"


@app.command()
def quickstart(
    config: Path = typer.Option(QUICKSTART_CONFIG, help="experiment config to run"),
) -> None:
    """Run the main job on the bundled sample: check the evidence, train, register, promote."""
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
    training_cli.promote(model=result.model_name, version=result.version)


if __name__ == "__main__":
    app()
