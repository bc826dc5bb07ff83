"""`prescore forget`: remove an educator's evidence (their right to it), and evidence text past
its retention, from the review queue and the exports; list the model versions that learned
from it. Prints what it would do unless told `--yes`, as a deletion should."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from prescore import defaults

if TYPE_CHECKING:
    from prescore.review.queue import ReviewQueue

console = Console()


@dataclass
class ExportHits:
    """An educator's records per export file, the recorded files no longer there, and the
    files that could not be searched, with why (never skipped in silence)."""

    found: dict[Path, int] = field(default_factory=dict)
    missing: list[Path] = field(default_factory=list)
    unsearched: dict[Path, str] = field(default_factory=dict)


NOT_JSON_LINES = "not a .jsonl file, so not an export forget can rewrite: check it by hand"


def export_files(
    recorded: list[Path], given: list[Path]
) -> tuple[list[Path], list[Path], dict[Path, str]]:
    """(files to search, recorded files that are gone, files under a given folder that are
    not JSON lines): those `export-reviews` recorded, and the files given (a folder: every
    *.jsonl under it, and the rest named)."""
    files: list[Path] = []
    missing: list[Path] = []
    others: dict[Path, str] = {}
    for path in recorded:
        (files if path.is_file() else missing).append(path)
    for path in given:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file())
            files += [p for p in found if p.suffix == ".jsonl"]
            others |= {p.resolve(): NOT_JSON_LINES for p in found if p.suffix != ".jsonl"}
        elif path.is_file():
            files.append(path)
        else:
            raise typer.BadParameter(
                f"{path} is neither a file nor a folder", param_hint="--exports"
            )
    return list(dict.fromkeys(p.resolve() for p in files)), missing, others


def find_in_exports(
    educator_id: str, files: list[Path], missing: list[Path], others: dict[Path, str]
) -> ExportHits:
    from prescore.data.review_export import NotAnExport, educator_records

    hits = ExportHits(missing=missing, unsearched=dict(others))
    for path in files:
        try:
            count = educator_records(path, educator_id)
        except NotAnExport as why:
            hits.unsearched[path] = str(why)
            continue
        if count:
            hits.found[path] = count
    return hits


def forget(
    educator: str | None = typer.Option(
        None, "--educator", help="the educator id (as sent in educator_id) whose evidence goes"
    ),
    older_than: int | None = typer.Option(
        None,
        "--older-than",
        envvar="PRESCORE_RETENTION_DAYS",
        min=1,
        help="retention: erase the evidence text of submissions decided more than DAYS ago, "
        "keeping their decisions and levels",
        metavar="DAYS",
    ),
    exports: list[Path] = typer.Option(
        [],
        "--exports",
        help="more export files or folders (searched for *.jsonl) to remove the educator's "
        "records from, beyond those `export-reviews` wrote and recorded; repeatable",
    ),
    review_db: str = typer.Option(defaults.REVIEW_DB, envvar="PRESCORE_REVIEW_DB"),
    yes: bool = typer.Option(False, "--yes", help="act; without it, only say what would go"),
) -> None:
    """Forget an educator's evidence (--educator) or evidence past retention (--older-than).

    For an educator: their pending submissions leave the review queue; decided ones keep the
    decision and levels but lose the evidence text, the feedback and the educator id; their
    records leave every export; and the model versions trained on their evidence are listed
    (retrain without it, then archive those versions). Nothing changes without --yes.
    """
    from prescore.serving_cli import open_queue

    if educator is None and older_than is None:
        raise typer.BadParameter(
            "say what to forget: --educator ID, or --older-than DAYS (PRESCORE_RETENTION_DAYS)"
        )
    if educator is not None and not educator.strip():
        raise typer.BadParameter(
            "the educator id is empty: give it as sent in educator_id", param_hint="--educator"
        )
    from sqlalchemy.engine import make_url

    url = make_url(review_db)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
        # opening would create an empty queue here, and "nothing found" would look like success
        raise SystemExit(
            f"no review queue at {Path(url.database).resolve()}: run this where `prescore serve` "
            "runs, or give --review-db / PRESCORE_REVIEW_DB"
        )
    queue = open_queue(review_db)
    if not yes:
        console.print("[bold]Dry run[/bold]: nothing is changed; add --yes to do it.")
    found = forget_educator(queue, educator, exports, yes) if educator is not None else True
    if older_than is not None:
        erase_expired(queue, older_than, yes)
    if not found:
        console.print(
            f"[red]Nothing of educator {educator!r} was found[/red] in the review queue, the "
            "exports or the training runs, and nothing was left unsearched: check the id (as "
            "sent in educator_id; it is case-sensitive). If they were forgotten before, "
            "nothing of theirs remains.",
            soft_wrap=True,
        )
        raise typer.Exit(1)


def forget_educator(queue: ReviewQueue, educator: str, exports: list[Path], act: bool) -> bool:
    """Say (and with `act`, do) what goes; False where nothing of theirs was found anywhere
    and nothing was left unsearched (an unknown id, most likely a typo)."""
    from prescore.data.owners import educator_salt, salt_file
    from prescore.data.review_export import remove_educator
    from prescore.models.registry import Lineage, tracking_uri, trained_on

    files, missing, others = export_files(queue.exports(), exports)
    hits = find_in_exports(educator, files, missing, others)
    salt = educator_salt()
    store = tracking_uri()
    local = Path(store.removeprefix("sqlite:///")) if store.startswith("sqlite:///") else None
    lineage = Lineage([], [])
    if local is None or local.exists():  # searching a store that is not there would create it
        # one small artifact read per run: no progress bar for each
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        with console.status("Searching the training runs for their evidence..."):
            lineage = trained_on(educator, salt)

    entries = queue.forget_educator(educator) if act else queue.educator_entries(educator)
    would = "" if act else "would be "
    console.print(f"Educator {educator}:")
    console.print(
        f"  review queue: {len(entries.pending)} pending submission(s) {would}withdrawn "
        "(stripped like the decided ones; no reviewer sees them again); "
        f"{len(entries.decided)} decided submission(s) {would}stripped of evidence text, "
        "feedback and educator id (decisions and levels stay)",
        soft_wrap=True,
        highlight=False,
    )
    console.print(
        f"  idempotency receipts answering for those submissions: {entries.receipts} "
        f"{would}deleted",
        soft_wrap=True,
        highlight=False,
    )
    for path, count in hits.found.items():
        if act:
            count = remove_educator(path, educator)
        console.print(f"  export {path}: {count} record(s) {would}removed", soft_wrap=True)
    if not hits.found:
        console.print(f"  exports: none of the {len(files)} searched hold their records")
    for path, why in hits.unsearched.items():
        console.print(f"  [yellow]{path} was not searched[/yellow]: {why}", soft_wrap=True)
    for path in hits.missing:
        console.print(
            f"  [yellow]export {path} is gone[/yellow] (moved or deleted?): search its new "
            "place with --exports",
            soft_wrap=True,
        )
    if lineage.trained_on:
        console.print(
            "  [bold]model versions trained on their evidence[/bold] (a model keeps what it "
            "learned: retrain without it, then archive or delete these):"
        )
        for run in lineage.trained_on:
            names = ", ".join(f"{name} version {version}" for name, version in run.versions)
            console.print(f"    run {run.run_id}: {names or 'no registered version'}")
    elif local is not None and not local.exists():
        console.print(
            f"  model versions: no MLflow store at {local}, so no training runs to search "
            "(set MLFLOW_TRACKING_URI to the store your models were trained into)",
            soft_wrap=True,
        )
    else:
        console.print("  model versions trained on their evidence: none recorded")
    if lineage.unknown:
        why = (
            f"no educator salt is set (PRESCORE_EDUCATOR_SALT, or the file {salt_file()})"
            if salt is None
            else "hashed under another salt, their record unreadable, or registered from "
            "a run that kept no record of whose evidence it used"
        )
        console.print(
            f"  [yellow]{len(lineage.unknown)} run(s) cannot tell[/yellow] ({why}): "
            + ", ".join(run.run_id for run in lineage.unknown),
            soft_wrap=True,
        )
    found = entries.pending or entries.decided or hits.found or lineage.trained_on
    unsearched = (
        hits.missing
        or hits.unsearched
        or lineage.unknown
        or (local is not None and not local.exists())
    )
    return bool(found or unsearched)


def erase_expired(queue: ReviewQueue, days: int, act: bool) -> None:
    before = datetime.now(UTC) - timedelta(days=days)
    count = queue.erase_decided_text(before) if act else queue.decided_with_text(before)
    console.print(
        f"Retention ({days} days): {count} item(s) of submissions decided before "
        f"{before:%Y-%m-%d %H:%M} UTC {'had' if act else 'would have'} their evidence text "
        "erased (decisions, levels and feedback stay)",
        soft_wrap=True,
    )
