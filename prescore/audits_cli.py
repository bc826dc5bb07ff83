"""`prescore audits list | resume`: the operator's side of the breaker on live audits."""

from __future__ import annotations

import getpass

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from prescore import defaults

console = Console()
app = typer.Typer(
    help="Credentials whose audited auto decisions stopped their auto route.",
    no_args_is_help=True,
)


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return "operator"


@app.command(name="list")
def list_breakers(
    review_db: str = typer.Option(defaults.REVIEW_DB, envvar="PRESCORE_REVIEW_DB"),
) -> None:
    """Each credential and model version its audits ever stopped: stopped now or resumed."""
    from prescore.review.audits import breaker_states
    from prescore.review.queue import ReviewQueue

    states = breaker_states(ReviewQueue(review_db))
    if not states:
        console.print("No credential's auto route has been stopped by its audits.")
        return
    table = Table(title="Auto routes stopped by audits", title_justify="left")
    for column in ("credential", "version", "auto", "stopped at", "audits", "overturned"):
        table.add_column(column)
    for column in ("target", "binomial p", "resumed"):
        table.add_column(column)
    for s in states:
        table.add_row(
            s.credential_id,
            s.model_version,
            "[red]stopped[/red]" if s.tripped else "running",
            f"{s.tripped_at:%Y-%m-%d %H:%M} UTC",
            str(s.audits),
            f"{s.errors} ({s.errors / s.audits:.1%})",
            f"{s.target:.1%}",
            f"{s.p_value:.3g}",
            "" if s.resumed_at is None else f"{s.resumed_at:%Y-%m-%d %H:%M} by {s.resumed_by}",
        )
    console.print(table)
    if any(s.tripped for s in states):
        console.print("Restart one with `prescore audits resume CREDENTIAL`.")


@app.command()
def resume(
    credential: str = typer.Argument(..., help="the credential id"),
    by: str = typer.Option(_operator(), help="who resumes it, kept with the breaker"),
    review_db: str = typer.Option(defaults.REVIEW_DB, envvar="PRESCORE_REVIEW_DB"),
) -> None:
    """Restart a credential's auto route its audits stopped; audits decided before now no
    longer count toward stopping it again. A newly promoted version needs no resume."""
    from prescore.review.audits import NotStopped
    from prescore.review.audits import resume as resume_auto
    from prescore.review.queue import ReviewQueue

    try:
        resumed = resume_auto(ReviewQueue(review_db), credential, by)
    except NotStopped as error:
        console.print(escape(str(error)), style="red")
        raise typer.Exit(1) from None
    versions = ", ".join(s.model_version for s in resumed)
    console.print(
        f"Resumed auto decisions of {credential} (version {versions}); running services see it "
        "within seconds. Audits decided before now no longer count toward stopping it again."
    )
