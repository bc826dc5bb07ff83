"""`prescore webhooks`: where the platform hears of decisions, and what was delivered there."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from prescore import defaults

console = Console()
app = typer.Typer(
    help="Webhooks to the platform (Standard Webhooks): endpoints and deliveries.",
    no_args_is_help=True,
)

DB = typer.Option(
    defaults.REVIEW_DB,
    "--db",
    envvar="PRESCORE_REVIEW_DB",
    help="review database (SQLAlchemy URL), the one `prescore serve` uses",
)


@app.command()
def add(url: str = typer.Argument(..., help="where to POST the events"), db: str = DB) -> None:
    """Add an endpoint; its signing secret is printed once, here, and never again."""
    from prescore.review.webhooks import add_endpoint
    from prescore.serving_cli import open_queue

    queue = open_queue(db)
    try:
        endpoint, secret = add_endpoint(queue, url)
    except ValueError as problem:
        raise SystemExit(str(problem)) from None
    finally:
        queue.engine.dispose()
    console.print(f"Endpoint {endpoint}: {escape(url)}")
    console.print("Its signing secret, shown this once (verify with standardwebhooks):")
    print(secret)  # plain, so a script can read it from the last line


@app.command(name="list")
def list_endpoints(db: str = DB) -> None:
    """The endpoints, without their secrets."""
    from prescore.review.webhooks import endpoints
    from prescore.serving_cli import open_queue

    queue = open_queue(db)
    try:
        rows = endpoints(queue)
    finally:
        queue.engine.dispose()
    if not rows:
        console.print("No webhook endpoints: `prescore webhooks add URL` adds one.")
        return
    table = Table("id", "url", "added")
    for row in rows:
        table.add_row(str(row.id), escape(row.url), row.created_at.isoformat(timespec="seconds"))
    console.print(table)


@app.command()
def remove(
    endpoint: int = typer.Argument(..., help="the endpoint's id (`list`)"), db: str = DB
) -> None:
    """Remove an endpoint, with the deliveries still owed to it or dead; no event goes there
    again. Delivered ones stay listed."""
    from prescore.review.webhooks import remove_endpoint
    from prescore.serving_cli import open_queue

    queue = open_queue(db)
    try:
        dropped = remove_endpoint(queue, endpoint)
    finally:
        queue.engine.dispose()
    if dropped is None:
        raise SystemExit(f"no webhook endpoint {endpoint}: `prescore webhooks list` shows them")
    console.print(f"Endpoint {endpoint} removed, with {dropped} undelivered event(s).")


@app.command(name="deliveries")
def list_deliveries(
    state: str = typer.Option(None, help="only due, delivered or dead"),
    limit: int = typer.Option(50, min=1),
    db: str = DB,
) -> None:
    """The newest deliveries: state, tries, last error, next try."""
    from prescore.review.webhooks import deliveries
    from prescore.serving_cli import open_queue

    queue = open_queue(db)
    try:
        rows = deliveries(queue, state, limit)
    finally:
        queue.engine.dispose()
    table = Table("id", "webhook-id", "event", "endpoint", "state", "tries", "last error", "next")
    for row in rows:
        table.add_row(
            str(row.id),
            row.message_id,
            row.event,
            str(row.endpoint_id),
            row.state,
            str(row.tries),
            row.last_error or "",
            row.next_try_at.isoformat(timespec="seconds") if row.state == "due" else "",
        )
    console.print(table)


@app.command()
def retry(
    delivery: int = typer.Argument(..., help="the delivery's id (`deliveries`)"), db: str = DB
) -> None:
    """Send a dead delivery again (same webhook-id), with a fresh count of tries."""
    from prescore.review.webhooks import retry as send_again
    from prescore.serving_cli import open_queue

    queue = open_queue(db)
    try:
        again = send_again(queue, delivery)
    finally:
        queue.engine.dispose()
    if not again:
        raise SystemExit(f"no delivery {delivery} waiting to be sent (unknown, or delivered)")
    console.print(f"Delivery {delivery} is due now; the service's worker sends it.")


@app.command()
def deliver(db: str = DB) -> None:
    """Run a delivery worker in the foreground (the service runs one already); settings from
    PRESCORE_WEBHOOK_*. Stops on Ctrl-C."""
    from prescore.review.webhooks import DeliveryPolicy, DeliveryWorker
    from prescore.serving_cli import open_queue

    queue = open_queue(db)
    worker = DeliveryWorker(queue, DeliveryPolicy.from_environment())
    console.print("Delivering webhooks; Ctrl-C stops.")
    try:
        worker.run()
    except KeyboardInterrupt:
        pass
    finally:
        queue.engine.dispose()
