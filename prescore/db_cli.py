"""`prescore db upgrade`: the review database's schema, by its Alembic migrations."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from prescore import defaults

console = Console()
app = typer.Typer(help="The review database's schema (Alembic migrations).", no_args_is_help=True)


@app.command()
def upgrade(
    db: str = typer.Option(
        defaults.REVIEW_DB,
        "--db",
        envvar="PRESCORE_REVIEW_DB",
        help="review database (SQLAlchemy URL), the one `prescore serve` uses",
    ),
) -> None:
    """Bring the review database to the newest schema; `prescore serve` runs it at start.

    An empty database is created; one from before migrations is stamped at the baseline first.
    """
    from prescore.review.database import shown_url
    from prescore.serving_cli import open_queue

    queue = open_queue(db)  # opening applies the migrations it lacks
    queue.engine.dispose()
    console.print(f"Review database {escape(shown_url(db))}: {queue.schema}.")
