"""`prescore serve`: check that the model and keys are there, start BentoML, say how to call it."""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from prescore import defaults
from prescore.model_option import model_option, read_model
from prescore.models.model_ref import DEFAULT as DEFAULT_MODEL

if TYPE_CHECKING:
    from prescore.demo import DemoRequest
    from prescore.eval.routing import Route
    from prescore.review.queue import ReviewQueue

console = Console()

DEFAULT_KEY_FILE = Path(".prescore/api-key")
DEFAULT_SESSION_SECRET = Path(".prescore/session-secret")
DEMO_TEXT = (
    "Before the unit I planned three questions for each lesson and waited five seconds after "
    "asking, so that more students answered; my exit tickets show who still needs support."
)


def ensure_secret(path: Path, what: str) -> Path:
    """A random secret in a file only the owner can read; created once, kept after."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        console.print(f"Created {what} in {path} (keep it out of version control).")
    return path.resolve()


def check_servable(model: str, alias: str) -> str:
    """Load the version `alias` names as the service will, so a broken one fails here, clearly,
    rather than in a restart loop inside BentoML; returns the version."""
    from prescore.serving.scoring import ScoringModel

    version = resolve_version(model, alias)
    try:
        ScoringModel.from_registry(model, version)
    except (FileNotFoundError, OSError, ValueError) as error:
        raise SystemExit(
            f"cannot serve {model} version {version}: {error}. Serve another version with "
            f"--model {model}@VERSION, or move champion with `prescore promote --model "
            f"{model}@VERSION`."
        ) from None
    return version


def resolve_version(model: str, alias: str) -> str:
    """The registered version `alias` names, or a clear error saying how to get one."""
    from mlflow.exceptions import MlflowException

    from prescore.models.registry import configure_tracking, registered_version
    from prescore.training_cli import missing_version_message

    configure_tracking()
    try:
        return str(registered_version(model, alias).version)
    except MlflowException:
        where = "version" if alias.isdigit() else "alias"
        raise SystemExit(
            f"cannot serve {model} {where} {alias!r}: {missing_version_message(model, alias)}. "
            "`prescore models` lists versions and aliases."
        ) from None


def curl_example(base_url: str, key_file: Path, credential_id: str, criteria: list[str]) -> str:
    """A whole submission: one item per criterion of the credential, so the answer carries
    the credential decision as well as each criterion's level."""
    items = [
        {
            "submission_id": "demo-1",
            "credential_id": credential_id,
            "criterion_id": criterion_id,
            "evidence_type": "reflection",
            "text": DEMO_TEXT,
        }
        for criterion_id in criteria
    ]
    body = json.dumps({"items": items})
    return (
        f"curl -s {base_url}/score \\\n"
        f'  -H "Authorization: Bearer $(cat {key_file})" \\\n'
        f'  -H "Content-Type: application/json" \\\n'
        f"  -d '{body}'"
    )


def ready_examples(
    base_url: str,
    key_file: Path,
    credential_id: str,
    criteria: list[str],
    examples: dict[Route, DemoRequest] | None,
) -> str:
    """The requests to try: held-out submissions decided alone and sent to a human where the
    quick-start found them, else a made-up submission."""
    from prescore.demo import curl_file, pull_curl
    from prescore.eval.routing import Route

    if not examples:
        return "Score a submission (one item per criterion):\n\n" + curl_example(
            base_url, key_file, credential_id, criteria
        )
    said = {
        Route.auto: "A held-out submission the model decides alone (route auto)",
        Route.human: "One it sends to a reviewer (route human)",
    }
    shown = [
        f"{said[route]}, {example.decision.decision} with confidence "
        f"{example.decision.confidence:.2f}:\n\n{curl_file(base_url, key_file, example.body)}"
        for route, example in sorted(examples.items())
    ]
    human = examples.get(Route.human)
    if human is not None:  # the third step: the decision and feedback come back
        decision = human.decision
        shown.append(
            f"Once a reviewer decides it (at {base_url}/review/), the platform hears back: "
            "pending until then, then the decision, levels and feedback "
            "(or by webhook: prescore webhooks add URL):\n\n"
            + pull_curl(base_url, key_file, decision.submission_id, decision.credential_id)
        )
    return "\n\n".join(shown)


def first_credential(base_url: str, key_file: Path) -> tuple[str, list[str]]:
    """The first credential the served model scores, with its criteria."""
    from prescore.serving.client import ScoringClient

    card = ScoringClient(base_url, key_file.read_text().strip()).credentials().body
    credential = card["credentials"][0]
    return credential["credential_id"], [c["criterion_id"] for c in credential["criteria"]]


def serve(
    model: str = model_option(
        DEFAULT_MODEL, "NAME alone: its champion; `POST /reload` follows the alias"
    ),
    host: str = typer.Option("127.0.0.1", help="address to bind; 0.0.0.0 for every interface"),
    port: int = typer.Option(3000, help="HTTP port"),
    api_key_file: Path = typer.Option(
        DEFAULT_KEY_FILE,
        help="file with one API key per line; created with a random key if missing, unless "
        "PRESCORE_API_KEYS is set",
    ),
    max_items: int = typer.Option(
        defaults.MAX_ITEMS_PER_REQUEST, help="most items one request may carry"
    ),
    max_text_chars: int = typer.Option(
        defaults.MAX_TEXT_CHARS, help="longest evidence text accepted"
    ),
    review_db: str = typer.Option(
        defaults.REVIEW_DB, envvar="PRESCORE_REVIEW_DB", help="review queue (SQLAlchemy URL)"
    ),
    ready_timeout: float = typer.Option(
        defaults.READY_TIMEOUT_SECONDS, help="seconds to wait for the service to start"
    ),
) -> None:
    """Serve the registered model over HTTP with BentoML: POST /score, GET /credentials."""
    ref = read_model(model).or_alias()
    run_service(
        ref.name,
        str(ref.reference),
        host,
        port,
        api_key_file,
        max_items,
        max_text_chars,
        review_db,
        ready_timeout,
    )


def run_service(
    model: str,
    alias: str,
    host: str,
    port: int,
    api_key_file: Path,
    max_items: int,
    max_text_chars: int,
    review_db: str,
    ready_timeout: float,
    examples: dict[Route, DemoRequest] | None = None,
) -> None:
    """`serve`, with the quick-start's example requests (prescore/demo.py) printed when ready
    in place of the made-up one."""
    from prescore.review.database import shown_url

    version = check_servable(model, alias)
    queue = open_queue(review_db)  # a missing driver or database stops here, clearly
    queue.engine.dispose()  # opening upgraded its schema (`prescore db upgrade`)
    console.print(f"Review database {escape(shown_url(review_db))}: {queue.schema}.")
    from prescore.serving.launch import forward_termination, start_service, stop, wait_until_ready

    settings: dict[str, str] = {}
    key_file = api_key_file.resolve()
    if not os.environ.get("PRESCORE_API_KEYS"):
        key_file = ensure_secret(api_key_file, "an API key")
        settings["PRESCORE_API_KEYS_FILE"] = str(key_file)
    if not os.environ.get("PRESCORE_SESSION_SECRET"):
        secret = ensure_secret(DEFAULT_SESSION_SECRET, "the reviewers' session key")
        settings["PRESCORE_SESSION_SECRET_FILE"] = str(secret)
    settings.update(
        PRESCORE_REVIEW_DB=review_db,
        PRESCORE_MODEL=model,
        PRESCORE_MODEL_ALIAS=alias,
        PRESCORE_MAX_ITEMS=str(max_items),
        PRESCORE_MAX_TEXT_CHARS=str(max_text_chars),
    )
    console.print(f"Starting {model} version {version} ({alias}) on http://{host}:{port} ...")
    process = start_service(settings, host, port)
    base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    with forward_termination(process) as terminated:
        try:
            if not wait_until_ready(process, base_url, ready_timeout):
                stop(process)
                if terminated:  # stopped while starting, by the SIGTERM it was sent
                    raise SystemExit(128 + terminated[0])
                console.print("[red]The service did not become ready; see its log above.[/red]")
                raise typer.Exit(1)
            credential_id, criteria = (
                first_credential(base_url, key_file)
                if key_file.is_file()
                else ("CREDENTIAL", ["CRITERION"])
            )
            console.print(
                f"\n[green]Ready.[/green] "
                f"{ready_examples(base_url, key_file, credential_id, criteria, examples)}\n\n"
                f"What it scores: GET {base_url}/credentials; API docs: {base_url}/api/docs; "
                f"reviewers: {base_url}/review/ (add one with `prescore reviewers add`). "
                "Ctrl+C stops it.\n",
                highlight=False,
                soft_wrap=True,
            )
            while not terminated and process.poll() is None:
                time.sleep(0.5)  # wakes for a forwarded SIGTERM; `stop` bounds the wait
        except KeyboardInterrupt:  # Ctrl+C or SIGINT: the server is in its own process group
            stop(process)
    if terminated:  # stopped within its grace period; exit as a process ended by that signal
        stop(process)
        raise SystemExit(128 + terminated[0])


def add_reviewer(
    name: str = typer.Argument(..., help="the reviewer's sign-in name"),
    credentials: str = typer.Option(..., help="comma-separated credential ids they may score"),
    kind: str | None = typer.Option(
        None,
        help="expert (decides any submission alone) or peer (low-stakes only; two agreeing "
        "peers decide); needed for a new reviewer, kept for an existing one when left out",
    ),
    admin: bool | None = typer.Option(
        None, "--admin/--no-admin", help="may open the reviewers' report page; kept when left out"
    ),
    keep_password: bool = typer.Option(
        False, "--keep-password", help="change an existing reviewer's kind or credentials only"
    ),
    review_db: str = typer.Option(defaults.REVIEW_DB, envvar="PRESCORE_REVIEW_DB"),
    password_stdin: bool = typer.Option(
        False,
        "--password-stdin",
        help="read the password from standard input (one line), e.g. from a secrets manager; "
        "otherwise it is asked for, twice, without echo",
    ),
) -> None:
    """Create a reviewer, or change their password (which signs them out everywhere), kind and
    credentials. The password is never an option: options land in shell history and `ps`."""
    import sys

    from prescore.review.assessors import kind_of
    from prescore.review.queue import ReviewQueue
    from prescore.review.reviewers import set_reviewer
    from prescore.review.tables import Reviewer

    queue = ReviewQueue(review_db)
    with queue.sessions() as session:
        exists = session.get(Reviewer, name) is not None
    if kind is None and not exists:
        console.print(
            f"[red]Say what kind of reviewer {name} is: --kind expert or --kind peer[/red]"
        )
        raise typer.Exit(1)
    password: str | None = None
    if not keep_password:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    assigned = [c.strip() for c in credentials.split(",") if c.strip()]
    try:
        set_reviewer(queue, name, password, assigned, kind=kind, admin=admin)
    except ValueError as error:
        console.print(f"[red]Nothing changed[/red]: {escape(str(error))}")
        raise typer.Exit(1) from None
    kind_now, is_admin = kind_of(queue, name)
    console.print(
        f"Reviewer {name} ({kind_now}{', administrator' if is_admin else ''}) may score: "
        f"{', '.join(sorted(set(assigned)))}"
    )


def calibrate(
    credential: str = typer.Argument(..., help="the credential id"),
    training_items: int = typer.Option(
        0, help="adjudicated submissions a reviewer scores, seeing the answer, before live work"
    ),
    blind_rate: float = typer.Option(
        0.0, help="chance, after each live verdict, of an adjudicated submission mixed in blind"
    ),
    min_qwk: float = typer.Option(
        defaults.REVIEWER_MIN_QWK,
        help="the bar: QWK with the adjudicated levels (the model's gate)",
    ),
    min_decision_agreement: float = typer.Option(
        defaults.REVIEWER_MIN_DECISION_AGREEMENT, help="the bar: share of decisions as adjudicated"
    ),
    review_db: str = typer.Option(defaults.REVIEW_DB, envvar="PRESCORE_REVIEW_DB"),
) -> None:
    """Set how a credential's reviewers are trained and calibrated against adjudicated
    submissions (decided ones whose owner consented to training)."""
    from prescore.review.assessors import Plan, adjudicated, set_plan
    from prescore.review.queue import ReviewQueue

    queue = ReviewQueue(review_db)
    plan = Plan(credential, training_items, blind_rate, min_qwk, min_decision_agreement)
    try:
        set_plan(queue, plan)
    except ValueError as error:
        console.print(f"[red]Nothing changed[/red]: {escape(str(error))}")
        raise typer.Exit(1) from None
    console.print(
        f"{credential}: {training_items} training item(s) before live work, blind items at "
        f"{blind_rate:.0%}, bar QWK {min_qwk:.2f} and decision agreement "
        f"{min_decision_agreement:.0%} ({len(adjudicated(queue, credential))} adjudicated "
        "submission(s) to draw on)."
    )


def report_reviewers(
    review_db: str = typer.Option(defaults.REVIEW_DB, envvar="PRESCORE_REVIEW_DB"),
) -> None:
    """Each reviewer's calibration, volume, time and agreement with the model, flagged ones
    first, beside the human-human and model agreement on the same credentials."""
    from prescore.review.agreement import Agreement, benchmarks, figures, scoring_models
    from prescore.review.queue import ReviewQueue

    def numbers(a: Agreement) -> str:
        return (
            f"exact {_share(a.exact)}, adjacent {_share(a.adjacent)}, QWK {_number(a.qwk)}, "
            f"decisions {_share(a.decision_agreement)}"
        )

    queue = ReviewQueue(review_db)
    rows = sorted(figures(queue), key=lambda f: (not f.flagged, f.reviewer, f.credential_id))
    console.print("[bold]Reviewers[/bold] (calibration: against adjudicated submissions)")
    for f in rows:
        flag = f"[red]FLAGGED[/red] ({'; '.join(f.why)}): no live high-stakes work. " * f.flagged
        time = "" if f.median_seconds is None else f", median {f.median_seconds:.0f} s"
        console.print(
            f"{flag}{f.reviewer} ({f.kind}{', admin' if f.admin else ''}) on {f.credential_id}: "
            f"training {f.training_done}/{f.plan.training_items}; calibration "
            f"{f.calibration.submissions} submission(s), {f.blind_items} blind: "
            f"{numbers(f.calibration)}; live {f.live_reviews}{time}; with the model's "
            f"suggestion: {numbers(f.with_model)}",
            soft_wrap=True,
            highlight=False,
        )
    if not rows:
        console.print("No reviewers yet: `prescore reviewers add NAME --kind expert|peer`.")
    console.print("[bold]Compared with[/bold] (the same numbers, per credential)")
    models = scoring_models(queue)
    for b in benchmarks(queue):
        console.print(
            f"{b.credential_id}: two humans on one submission, {b.human_pairs.submissions} "
            f"pair(s): {numbers(b.human_pairs)}; the model against decided levels, "
            f"{b.model.submissions} submission(s): {numbers(b.model)}",
            soft_wrap=True,
            highlight=False,
        )
        if b.credential_id in models:
            console.print(
                f"  {held_out_line(b.credential_id, *models[b.credential_id])}",
                soft_wrap=True,
                highlight=False,
            )


def held_out_line(credential_id: str, model: str, version: str) -> str:
    """The held-out QWK of the model and of two humans per criterion, from the registry at
    MLFLOW_TRACKING_URI; a line saying why where it cannot be read."""
    from mlflow.exceptions import MlflowException

    from prescore.models.registry import version_metrics
    from prescore.review.agreement import held_out

    try:
        metrics = version_metrics(model, version)
    except MlflowException as error:
        return f"held out: not available ({model} version {version}: {error.message})"
    criteria = held_out(metrics, credential_id)
    if not criteria:
        return f"held out: {model} version {version} logged no agreement for {credential_id}"
    shown = "; ".join(
        f"{criterion} model QWK {_number(model_qwk)}, human-human QWK {_number(human_qwk)}"
        for criterion, (model_qwk, human_qwk) in criteria.items()
    )
    return f"held out, the bar {model} version {version} was qualified against: {shown}"


def _share(x: float) -> str:
    return "" if x != x else f"{x:.0%}"


def _number(x: float) -> str:
    return "" if x != x else f"{x:.2f}"


def export_reviews(
    out: Path = typer.Option(..., help="JSON-lines file in the evidence schema"),
    review_db: str = typer.Option(defaults.REVIEW_DB, envvar="PRESCORE_REVIEW_DB"),
) -> None:
    """Write reviewed criteria with their final levels and every reviewer's score and kind
    (expert / peer), and their rubrics in rubrics/ beside the file: ready for `prescore train`
    with `data.path` set to it (`data.final_level_kinds: [expert]` keeps experts' only).

    Only evidence whose owner consented to training is written. Each credential's rubric is
    rebuilt from the routing policy of the newest model version that scored it (fetched from
    the registry at MLFLOW_TRACKING_URI); nothing is written unless all of it resolves.
    """
    from mlflow.exceptions import MlflowException

    from prescore.data.review_export import rubrics_path, scored_by, write_export
    from prescore.serving.scoring import rubrics_of

    queue = open_queue(review_db)
    items = queue.reviewed_items()
    try:
        rubrics = rubrics_of(scored_by(items))
        written, withheld, files = write_export(items, rubrics, out)
    except (MlflowException, OSError, LookupError, ValueError) as error:
        message = error.message if isinstance(error, MlflowException) else str(error)
        console.print(f"[red]Nothing exported[/red]: {message}")
        raise typer.Exit(1) from None
    queue.record_export(out, written)  # where `prescore forget` will look for evidence
    console.print(
        f"Wrote {written} reviewed item(s) to {out}; left out {withheld} without training "
        f"consent or whose text was erased. Rubrics: {len(files)} file(s) in "
        f"{rubrics_path(out)}.",
        soft_wrap=True,
    )


def open_queue(review_db: str) -> ReviewQueue:
    """The review queue, or a clear exit: a missing driver says what to install, an
    unreachable database where it was looked for (its password masked)."""
    from sqlalchemy.exc import SQLAlchemyError

    from prescore.review.database import MissingDriver, shown_url
    from prescore.review.queue import ReviewQueue

    try:
        return ReviewQueue(review_db)
    except MissingDriver as error:
        raise SystemExit(f"cannot open the review queue: {error}") from None
    except SQLAlchemyError as error:
        # the driver's first line names the cause (refused, unknown host, bad password)
        cause = str(getattr(error, "orig", None) or error).splitlines()[0]
        raise SystemExit(
            f"cannot open the review queue at {shown_url(review_db)}: {cause}. Check "
            "--review-db / PRESCORE_REVIEW_DB and that the database is running."
        ) from None
