"""`prescore data ...`: check evidence files and convert public sets into the evidence schema."""

from __future__ import annotations

import json
from collections import Counter
from enum import StrEnum
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from prescore import defaults
from prescore.data.adapters import ADAPTERS, adapt
from prescore.data.load import DataSource, EvidenceSet, load_evidence, read_source
from prescore.data.problems import InputError, Problem
from prescore.data.rubrics import write_rubric
from prescore.data.schema import Split
from prescore.data.split import SplitConfig

app = typer.Typer(help="Check evidence files and convert public data sets.", no_args_is_help=True)
console = Console()


class LevelsAsOption(StrEnum):
    label = "label"
    value = "value"


@app.command()
def check(
    file: Path | None = typer.Argument(
        None, help="evidence file (CSV, TSV, JSONL, Parquet), or a public set with --adapter"
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="check the data block of an experiment config: the split, groups and counts "
        "that `prescore train` will use",
    ),
    rubrics: Path | None = typer.Option(
        None, help="rubric file or folder [default: rubrics/ beside FILE]"
    ),
    adapter: str | None = typer.Option(
        None, help=f"read a foreign layout: {', '.join(sorted(ADAPTERS))}"
    ),
    levels_as: LevelsAsOption | None = typer.Option(
        None,
        "--levels-as",
        help="level cells are labels or values [default: either, where unambiguous]",
    ),
    max_text_chars: int = typer.Option(
        defaults.MAX_TEXT_CHARS_CEILING, help="longest evidence text accepted"
    ),
    seed: int = typer.Option(13, help="seed of the educator split"),
    show: int = typer.Option(200, help="most problems to list (all are counted)"),
) -> None:
    """Validate every record; list every problem, or summarise the evidence and its splits."""
    if (file is None) == (config is None):
        console.print("[red]Give an evidence FILE or --config, not both[/red] (one is needed).")
        raise typer.Exit(2)
    try:
        if config is not None:
            source = source_of_config(config)
            if levels_as is not None:
                source = source.model_copy(update={"levels_as": levels_as.value})
        else:
            assert file is not None
            source = DataSource(
                path=file,
                adapter=adapter,
                rubrics=rubrics,
                levels_as=levels_as.value if levels_as else None,
                max_text_chars=max_text_chars,
                split=SplitConfig(seed=seed),
            )
        status(f"Checking {source.path}...")
        with console.status(f"Checking {source.path}..."):
            evidence = load_evidence(source)
    except ValidationError as error:
        console.print(f"[red]Bad option:[/red] {error.errors()[0]['msg']}")
        raise typer.Exit(2) from None
    except InputError as error:
        print_problems(error.problems, console, show=show)
        raise typer.Exit(1) from None
    print_load_summary(evidence, console, source)


def source_of_config(config: Path) -> DataSource:
    """The data block of an experiment config, its paths resolved as training resolves them."""
    from prescore.training.config import load_config

    return load_config(config).data


def status(message: str) -> None:
    """A spinner draws nothing into a redirected log; there the step is one plain line."""
    if not console.is_terminal:
        print(message, flush=True)


@app.command()
def convert(
    adapter: str = typer.Argument(..., help=f"one of: {', '.join(sorted(ADAPTERS))}"),
    source: Path = typer.Argument(..., help="the public set's folder or file"),
    out: Path = typer.Option(..., help="folder to write evidence.jsonl and rubrics/ into"),
) -> None:
    """Write a public set in the evidence schema, to read or to start a platform adapter from."""
    if adapter not in ADAPTERS:
        console.print(f"[red]Unknown adapter {adapter!r}[/red]; choose one of {sorted(ADAPTERS)}")
        raise typer.Exit(2)
    try:
        read_source(DataSource(path=source, adapter=adapter))  # refuse to write what won't load
        credentials, records = adapt(adapter, source)
    except InputError as error:
        print_problems(error.problems, console)
        raise typer.Exit(1) from None
    out.mkdir(parents=True, exist_ok=True)
    target = out / "evidence.jsonl"
    temporary = target.with_suffix(".jsonl.tmp")
    with temporary.open("w", encoding="utf-8") as stream:
        for record in records:
            stream.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    temporary.replace(target)
    for credential in credentials.values():
        write_rubric(credential, out / "rubrics")
    console.print(
        f"Wrote {len(records):,} records to {target} "
        f"and {len(credentials)} rubric(s) to {out / 'rubrics'}"
    )


def describe_split(source: DataSource) -> str:
    """The split rule in words, as training will apply it."""
    split = source.split
    return (
        f"Split: train {split.train:g}, calibration {split.calibration:g}, test {split.test:g} "
        f"by educator, seed {split.seed} (a `split` column in the file wins for its rows); "
        f"repeats {'removed' if source.dedupe else 'kept'}; levels read "
        + (f"as {source.levels_as}s" if source.levels_as else "as labels or values (unambiguous)")
    )


def print_problems(problems: list[Problem], console: Console, show: int = 200) -> None:
    table = Table(title=f"{len(problems)} problem(s): nothing was loaded", title_justify="left")
    for column in ("file", "row", "field", "problem"):
        table.add_column(column, overflow="fold")
    for problem in problems[:show]:
        table.add_row(
            escape(problem.file),
            "" if problem.row is None else str(problem.row),
            escape(problem.field or ""),
            escape(problem.message),  # a message like `pip install 'prescore[mpnet]'` is no markup
        )
    console.print(table)
    if len(problems) > show:
        kinds = Counter(p.field or "(file)" for p in problems)
        console.print(
            f"... and {len(problems) - show} more (raise --show to list them). By field: "
            + ", ".join(f"{k} {v}" for k, v in kinds.most_common())
        )
    console.print("Fix these and run the check again. Rows count records from 1, after any header.")


def print_load_summary(
    evidence: EvidenceSet, console: Console, source: DataSource | None = None
) -> None:
    report = evidence.report
    splits = {split: evidence.splits[split.value] for split in Split}
    console.print(
        f"[bold]{report.source}[/bold]: {report.records:,} valid records; "
        f"{report.without_consent:,} without training consent left out; "
        f"{report.exact_duplicates:,} exact and {report.near_duplicates:,} near-exact "
        "duplicates removed; "
        + ", ".join(
            f"{split.value} {len(d):,} items / {len(set(d['educator_id'])):,} educators"
            for split, d in splits.items()
        ),
        soft_wrap=True,
    )
    if source is not None:
        console.print(describe_split(source), soft_wrap=True, highlight=False)
    frames = list(splits.values())
    groups = [c for c in frames[0].columns if c.startswith("group_")]
    if groups:
        shown = []
        for column in groups:
            values = Counter(v for d in frames for v in d[column] if isinstance(v, str))
            listed = ", ".join(f"{v} ({n:,})" for v, n in sorted(values.items())[:12])
            more = f", ... {len(values) - 12} more" if len(values) > 12 else ""
            shown.append(f"{column}: {listed}{more}")
        console.print(
            "Group fields read (fairness checks): " + "; ".join(shown),
            soft_wrap=True,
            highlight=False,
        )
    else:
        console.print("No group fields (group_<name> columns or a `groups` object) were read.")
    if report.educators_on_several_sides:
        console.print(
            f"[yellow]{report.educators_on_several_sides} educator(s) appear in more than one "
            "split through the file's own `split` column.[/yellow]"
        )
    if report.ignored_columns:
        console.print(f"Columns not in the schema, ignored: {', '.join(report.ignored_columns)}")
    if report.final_level_kinds.get("peer"):
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in report.final_level_kinds.items())
        dropped = (
            f"{report.left_out_by_kind:,} left out by data.final_level_kinds"
            if report.left_out_by_kind
            else "all kept; set data.final_level_kinds: [expert] to train on experts' only"
        )
        console.print(f"Final levels by rater kind: {kinds} ({dropped}).", soft_wrap=True)

    counts = {
        split: Counter(zip(d["credential_id"], d["criterion_id"], d["label"], strict=True))
        for split, d in splits.items()
    }
    criteria = Table(title="Evidence by criterion and split", title_justify="left")
    levels = Table(title="Final levels by criterion and split", title_justify="left")
    for table in (criteria, levels):
        table.add_column("credential")
        table.add_column("criterion")
    criteria.add_column("stakes")
    criteria.add_column("levels", justify="right")
    levels.add_column("level")
    for table in (criteria, levels):
        for split in Split:
            table.add_column(split.value, justify="right")
        table.add_column("total", justify="right")

    for credential in evidence.credentials.values():
        for criterion in credential.criteria:
            per_split = [
                sum(
                    n
                    for (cr, ci, _), n in counts[s].items()
                    if (cr, ci) == (credential.id, criterion.id)
                )
                for s in Split
            ]
            if not sum(per_split):
                continue
            criteria.add_row(
                credential.id,
                criterion.id,
                credential.stakes.value,
                str(len(criterion.levels)),
                *map(str, per_split),
                str(sum(per_split)),
            )
            for index, level in enumerate(criterion.levels):
                row = [counts[s][(credential.id, criterion.id, index)] for s in Split]
                if sum(row):
                    levels.add_row(
                        credential.id, criterion.id, level.label, *map(str, row), str(sum(row))
                    )
    console.print(criteria)
    console.print(levels)
