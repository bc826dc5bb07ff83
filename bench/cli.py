"""`prescore bench ...` (or `python -m bench ...`): benchmarks that print Markdown tables,
never timed tests."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape

from prescore import defaults
from prescore.data.problems import InputError
from prescore.data_cli import print_problems
from prescore.model_option import model_option, read_model
from prescore.models.model_ref import DEFAULT as DEFAULT_MODEL

if TYPE_CHECKING:
    import pandas as pd

    from bench.accuracy import FoldResult
    from prescore.serving.schemas import EvidenceToScore

app = typer.Typer(help="Benchmarks that print Markdown tables.", no_args_is_help=True)
console = Console()


class ModelProcess(StrEnum):
    inline = "inline"
    separate = "separate"


@app.command()
def serving(
    model: str = model_option(DEFAULT_MODEL, "NAME alone: its champion"),
    config: Path = typer.Option(
        defaults.QUICKSTART_CONFIG, help="experiment config whose evidence supplies the texts"
    ),
    split: str = typer.Option(
        "test", help="which split of that evidence: train, calibration, test"
    ),
    items: int = typer.Option(100, min=10, help="how many distinct texts to send, one item each"),
    min_words: int = typer.Option(0, min=0, help="only texts of at least this many words"),
    max_words: int = typer.Option(0, min=0, help="only texts of at most this many words (0: any)"),
    shared: int = typer.Option(
        10, min=0, help="texts also scored on every criterion of their credential, one batch each"
    ),
    http: bool = typer.Option(True, help="also measure the HTTP service on the fastest runtime"),
    model_process: ModelProcess = typer.Option(
        ModelProcess.inline,
        help="the served model in the API's process, or in a model service of its own",
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead"),
) -> None:
    """Each runtime in-process (PyTorch fp32, ONNX fp32, ONNX int8) and the HTTP service on the
    fastest, on the same distinct texts: latency, throughput, memory and level agreement."""
    import json

    from bench.serving import bench_serving
    from prescore.data.load import load_evidence
    from prescore.models.registry import configure_tracking
    from prescore.training.config import load_config

    ref = read_model(model).or_alias()
    try:
        evidence = load_evidence(load_config(config).data).splits
    except InputError as error:
        print_problems(error.problems, console)
        raise typer.Exit(1) from None
    if split not in evidence:
        console.print(f"[red]no split {split!r}; splits: {', '.join(evidence)}[/red]")
        raise typer.Exit(1)
    distinct, batches = bench_items(evidence[split], items, min_words, max_words, shared)
    if len(distinct) < 10:
        console.print(
            f"[red]only {len(distinct)} distinct texts of the {split} split fit the word limits; "
            "widen --min-words/--max-words or choose another --split[/red]"
        )
        raise typer.Exit(1)
    configure_tracking()
    err = Console(stderr=True)
    with err.status("Timing...") as status:
        result = bench_serving(
            ref.name, str(ref.reference), distinct, batches, http, model_process.value,
            on_step=lambda step: status.update(f"Timing {step} on {len(distinct)} texts..."),
        )  # fmt: skip
    if as_json:
        print(json.dumps(result.as_json(), indent=2))
        return
    console.print(result.markdown(), highlight=False, soft_wrap=True, markup=False)


def bench_items(
    split: pd.DataFrame, count: int, min_words: int, max_words: int, shared: int
) -> tuple[list[EvidenceToScore], list[list[EvidenceToScore]]]:
    """`count` distinct texts within the word limits, one item each (criteria in turn), and
    `shared` of them as batches of every criterion the text was scored on."""
    from prescore.serving.schemas import EvidenceToScore

    def item(row: dict[Any, Any]) -> EvidenceToScore:
        return EvidenceToScore(
            submission_id=str(row["id"]),
            credential_id=row["credential_id"],
            criterion_id=row["criterion_id"],
            evidence_type=row["evidence_type"] or "evidence",
            text=row["text"],
        )

    words = split["text"].map(lambda text: len(str(text).split()))
    fits = (words >= min_words) & ((words <= max_words) if max_words else True)
    groups = [rows for _, rows in split[fits].groupby("text", sort=False)][:count]
    distinct = [item(rows.iloc[n % len(rows)].to_dict()) for n, rows in enumerate(groups)]
    batches = [[item(r) for r in rows.to_dict("records")] for rows in groups[:shared]]
    return distinct, batches


@app.command()
def accuracy(
    config: Path = typer.Option(
        ..., "--config", "-c", help="a benchmark config, e.g. experiments/asap-aes.yaml"
    ),
    quick: bool = typer.Option(
        False, "--quick", help="the baselines only (minutes on CPU); else baselines + config"
    ),
    embeddings: bool = typer.Option(
        True, help="include the frozen-embeddings baseline (vectors cached across folds)"
    ),
    base_model: str = typer.Option(
        "bundled", help="the embeddings baseline's encoder: bundled (MiniLM), mpnet, or a folder"
    ),
    tfidf: bool = typer.Option(True, help="include the plain TF-IDF baseline"),
    length: bool = typer.Option(
        True, help="include TF-IDF with evidence-length features (see models/length.py)"
    ),
    essay: bool = typer.Option(
        True,
        help="include the essay scorer (models/essay.py: n-grams, writing features, QWK cut "
        "points), and with --embeddings a second row that also reads the encoder's vectors",
    ),
    ensemble: bool = typer.Option(
        True, help="also pool the fold's scorers, weights chosen on its calibration split"
    ),
    param: list[str] = typer.Option(
        [],
        "--param",
        help="NAME=VALUE over the config scorer's params, repeatable: a candidate recipe "
        "without a config of its own, e.g. --param layer_lr_decay=0.9",
    ),
    cache_dir: Path = typer.Option(
        Path("reports/bench/embeddings-cache"), help="where text vectors are kept between folds"
    ),
    folds: str = typer.Option("", help="comma-separated folds to run, e.g. 1,2 [default: all]"),
    results: Path = typer.Option(
        Path("reports/bench/results.jsonl"), help="fold results are appended here (JSON lines)"
    ),
    out: Path | None = typer.Option(None, help="write the Markdown tables here as well"),
    track: bool = typer.Option(True, help="log tables and headline metrics to MLflow"),
) -> None:
    """Accuracy, triage and speed on a public set under its standard protocol."""
    from bench.accuracy import (
        BASELINE,
        ESSAY,
        WITH_LENGTH,
        embeddings_baseline,
        essay_with_embeddings,
        run_benchmark,
    )
    from bench.report import markdown
    from prescore.models.base_model import resolve_base_model
    from prescore.training.config import load_config

    try:
        if embeddings:
            resolve_base_model(base_model)  # a missing extra is said before any fold runs
        experiment = load_config(config)
        if param:
            experiment = experiment.model_copy(
                update={"scorer": experiment.scorer.with_params(param)}
            )
        baselines = [*([BASELINE] if tfidf else []), *([WITH_LENGTH] if length else [])]
        baselines += [ESSAY] if essay else []
        baselines += [embeddings_baseline(cache_dir, base_model)] if embeddings else []
        baselines += [essay_with_embeddings(cache_dir, base_model)] if essay and embeddings else []
        extra = [] if quick or experiment.scorer in baselines else [experiment.scorer]
        scorers = baselines + extra
        chosen = [int(f) for f in folds.split(",") if f.strip()]
        fold_results = run_benchmark(experiment, scorers, chosen or None, results, ensemble)
    except InputError as error:
        print_problems(error.problems, console)
        raise typer.Exit(1) from None
    except (ValueError, FileNotFoundError) as error:
        console.print(escape(str(error)), style="red")  # no markup: `[mpnet]` stays
        raise typer.Exit(1) from None
    show(markdown(fold_results), out, fold_results if track else None)


@app.command()
def report(
    results: list[Path] = typer.Argument(..., help="JSON-lines files written by bench accuracy"),
    out: Path | None = typer.Option(
        None,
        help="write the page here as well [default: eval/RESULTS.md when every file lies in "
        "eval/results/]",
    ),
    track: bool = typer.Option(False, help="log tables and headline metrics to MLflow"),
    as_json: bool = typer.Option(
        False, "--json", help="print only the headline figures per set and scorer, as JSON"
    ),
) -> None:
    """The current tables from fold results (eval/RESULTS.md from eval/results/*/*.jsonl), e.g.
    of folds run in parallel or on another machine."""
    import json

    from bench.report import headline, read_results
    from bench.results_page import page_beside, results_page

    missing = [str(p) for p in results if not p.is_file()]
    if missing:
        console.print(f"[red]no such file: {', '.join(missing)}[/red]")
        raise typer.Exit(1)
    fold_results = read_results(results)
    if as_json:
        print(json.dumps(headline(fold_results), indent=2))
        return
    show(results_page(results), out or page_beside(results), fold_results if track else None)


def show(tables: str, out: Path | None, track: list[FoldResult] | None = None) -> None:
    """Print the tables; write them to `out`; log them to MLflow when given the results."""
    console.print(tables, highlight=False, soft_wrap=True, markup=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(tables)
        console.print(f"Written to {out}")
    if track:
        from bench.report import log_results

        runs = log_results(track)
        console.print(f"Logged to MLflow: run(s) {', '.join(runs)}")
