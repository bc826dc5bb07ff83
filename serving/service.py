"""The BentoML services the assessment platform calls.

`Prescore` is the public HTTP API: API keys, strict input, errors that name the field and the
rule and never echo evidence text. The model host (serving/model_host.py) holds the registered
model with its routing policy, counts each request's tokens against the per-request budget,
merges the items of concurrent requests into model calls of a bounded number of tokens
(serving/workload.py), refuses with a retry time when the wait would be too long, and swaps in
a new version on `reload` without dropping requests in flight. It runs in the API's process,
or in `ScoringRunner`, a model service of its own (PRESCORE_MODEL_PROCESS, serving/endpoints.py).

Configured by PRESCORE_* environment variables (serving/settings.py); `prescore serve` sets them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import aiohttp
import anyio
import bentoml
from bentoml.exceptions import BentoMLException
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from prescore.models.inputs import words
from prescore.review.mount import mount_review
from prescore.serving.auth import KeyRequired, presented_key
from prescore.serving.endpoints import InlineModel, ModelEndpoint, RemoteModel
from prescore.serving.errors import error, invalid_request, refused, unavailable
from prescore.serving.human_review import HumanReview, Receipt, receipt_key, stop_auto, with_alarms
from prescore.serving.model_host import ModelHost
from prescore.serving.observability import (
    bound_metric_paths,
    escape_request_logs,
    trace_requests_not_messages,
)
from prescore.serving.outcomes import (
    RETRY_AFTER_UNAVAILABLE,
    ReloadOutcome,
    ScoringOutcome,
    too_many_tokens,
)
from prescore.serving.schemas import (
    ErrorDetail,
    ErrorResponse,
    EvidenceToScore,
    ModelCard,
    ReloadRequest,
    ScoreRequest,
    ScoreResponse,
    SubmissionOutcome,
)
from prescore.serving.scoring import submission_problems
from prescore.serving.settings import ServiceSettings
from prescore.serving.workload import CallerGone, unless_disconnected

logger = logging.getLogger("prescore.serving")

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200


def request_digest(body: ScoreRequest) -> str:
    """A digest of the request as sent: a retry matches it, another request does not."""
    return hashlib.sha256(body.model_dump_json().encode("utf-8", "surrogatepass")).hexdigest()


MODEL_VERSION_HEADER = "X-Prescore-Model-Version"
# where the model runs decides which services BentoML starts, so it is read at import
SEPARATE_MODEL = os.environ.get("PRESCORE_MODEL_PROCESS", "inline") == "separate"


# The API's client to this service replaces its HTTP session every `max_requests` calls and
# `max_age` seconds, closing the connections of calls still in flight (which this service then
# takes as callers gone, and the API retries); a stale kept-alive connection is retried once
# anyway (RemoteModel.call), so the session lives long.
@bentoml.service(
    name="prescore-model",
    workers=1,
    traffic={"timeout": 120},
    runner_connection={"max_requests": 1_000_000_000, "max_age": 7 * 24 * 3600.0},
)
class ScoringRunner:
    """The model in a process of its own (PRESCORE_MODEL_PROCESS=separate). One worker per
    replica, so a reload reaches the only copy in memory."""

    def __init__(self) -> None:
        escape_request_logs()
        logger.setLevel(logging.INFO)  # as in Prescore: BentoML's root level drops INFO
        self.host = ModelHost(ServiceSettings.from_environment())

    @bentoml.api
    async def predict(self, items: list[EvidenceToScore], ctx: bentoml.Context) -> ScoringOutcome:
        return await self.host.predict(items, ctx.request.receive)

    @bentoml.api
    def describe(self) -> ModelCard:
        return self.host.card

    @bentoml.api
    def reload(self, alias: str | None = None) -> ReloadOutcome:
        return self.host.reload(alias)


api = FastAPI(
    title="prescore scoring API",
    description="Pre-scores educator evidence against a micro-credential rubric.",
    docs_url="/api/docs",
    openapi_url="/api/openapi.json",
    redoc_url=None,
)


def answered_by(version: str, response: Response) -> Response:
    """The response naming the model version that answered it."""
    response.headers[MODEL_VERSION_HEADER] = version
    return response


for failure in (SQLAlchemyError, aiohttp.ClientError, TimeoutError, BentoMLException):
    api.add_exception_handler(failure, unavailable)
api.exception_handler(RequestValidationError)(invalid_request)


class FrontDoor:
    """The cap on /score requests in progress (the key was checked before any of the API's
    code ran: `ServiceKeys`).

    Plain ASGI: Starlette's `@app.middleware("http")` runs each request in a task group and
    streams the response through a memory channel; py-spy put a quarter of the event loop's
    time there, under one client (issue 15)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service: Prescore | None = getattr(scope["app"].state, "service", None)
        if scope["type"] != "http" or service is None:
            await self.app(scope, receive, send)
            return
        settings = service.settings

        if scope["path"] != "/score":
            await self.app(scope, receive, send)
            return
        if service.scoring_now >= settings.max_concurrent_requests:
            logger.warning("refused a request: %d already in progress", service.scoring_now)
            busy = error(503, "too many requests in progress; send it again after Retry-After")
            await busy(scope, receive, send)
            return
        service.scoring_now += 1
        try:
            await self.app(scope, receive, send)
        finally:
            service.scoring_now -= 1


api.add_middleware(FrontDoor)


# the reviewers' pages under /review; Prescore.__init__ connects them to their database
review = mount_review()


class ServiceKeys(KeyRequired):
    """Every route of the service, BentoML's own included, behind the configured API keys
    unless listed public (serving/auth.py); built in the worker, where the settings are."""

    def __init__(self, app: ASGIApp) -> None:
        settings = ServiceSettings.from_environment()
        super().__init__(app, settings.api_keys, settings.allow_anonymous)


# BentoML's own concurrency cap answers 429 in its own shape; ours (max_concurrent_requests)
# answers first, with the documented shape and Retry-After, so BentoML's is only a backstop.
@bentoml.service(name="prescore", traffic={"timeout": 120, "max_concurrency": 1024})
@bentoml.asgi_app(api, path="/")
@bentoml.asgi_app(review.app, path=review.path)
class Prescore:
    if SEPARATE_MODEL:
        runner = bentoml.depends(ScoringRunner)

    def __init__(self) -> None:
        escape_request_logs()
        # BentoML's server logging leaves the root at WARNING, which dropped our INFO lines
        # (the version loaded, a reload); they are few, and for the operator
        logger.setLevel(logging.INFO)
        self.settings = ServiceSettings.from_environment()
        self.scoring_now = 0  # /score requests in progress, for max_concurrent_requests
        self.reviews: HumanReview = review.open(self.settings)  # its database upgraded
        api.state.service = self
        self.model: ModelEndpoint = (
            RemoteModel(self.runner) if SEPARATE_MODEL else InlineModel(ModelHost(self.settings))
        )

    @api.post(
        "/score",
        response_model=ScoreResponse,
        responses={
            401: {"model": ErrorResponse},
            413: {"model": ErrorResponse, "description": "more tokens than one request may hold"},
            422: {"model": ErrorResponse},
            503: {"model": ErrorResponse, "description": "busy or unavailable: see Retry-After"},
        },
    )
    async def score(self, body: ScoreRequest, request: Request) -> Any:
        """Pre-score evidence items: level, probabilities, confidence, route and reasons, and a
        decision per submission. With an `Idempotency-Key` header, a retry of the same request
        gets the first answer back and queues nothing twice."""
        key = request.headers.get(IDEMPOTENCY_HEADER)
        digest = "" if key is None else request_digest(body)
        if key is not None:
            if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
                detail = ErrorDetail(
                    field=f"header.{IDEMPOTENCY_HEADER}",
                    rule="invalid_idempotency_key",
                    message=f"1 to {MAX_IDEMPOTENCY_KEY} characters",
                )
                return error(422, "the Idempotency-Key header is not usable", [detail])
            key = receipt_key(presented_key(request), key)  # one caller's, and not kept as sent
            answered = await self.first_answer(key, digest)
            if answered is not None:
                return answered
        problems = self.input_problems(body.items)  # the model refuses what it does not score
        if problems:
            return error(422, "some items cannot be scored as sent", problems)
        least = sum(words(item.text) for item in body.items)  # no tokenizer here: a lower bound
        if least > self.settings.max_request_tokens:
            return refused(too_many_tokens(least, self.settings.max_request_tokens, at_least=True))
        try:
            outcome = await unless_disconnected(request.receive, self.model.predict(body.items))
        except CallerGone:  # nobody to answer; its queued work was dropped
            logger.info("a caller disconnected before its answer; its work was cancelled")
            return Response(status_code=499)
        if outcome.refusal is not None:
            return refused(outcome.refusal)
        # the scores and decisions of one version, whatever reload landed meanwhile
        scores, submissions, card = outcome.scores, outcome.submissions, outcome.card
        assert card is not None  # the model service sends it with the scores
        version = card.model_version
        # a credential whose audits stopped its auto route: all of it to a human
        scores, submissions = stop_auto(scores, submissions, await self.reviews.stopped(version))
        # serialized once, by pydantic: the same bytes answer now and any retry, and FastAPI
        # does not dump, validate and encode the response again (response_model is for docs)
        answer = ScoreResponse(
            model_name=card.model_name,
            model_version=version,
            runtime=scores[0].runtime,
            scores=scores,
            submissions=submissions,
        ).model_dump_json()
        receipt = None if key is None else Receipt(key, digest, answer)
        try:  # every human-routed decision and the audit sample, with the receipt, committed
            # before the answer in one transaction: an acknowledged submission is never lost
            await anyio.to_thread.run_sync(
                self.reviews.take,
                body.items,
                scores,
                submissions,
                card,
                receipt,
                self.receipts_expired_before(),
            )
        except IntegrityError:
            if key is not None:  # the same key was answered meanwhile: give that answer
                answered = await self.first_answer(key, digest)
                if answered is not None:
                    return answered
            raise  # nothing was stored: a 503 from `unavailable`, like any queue failure
        return answered_by(version, Response(answer, media_type="application/json"))

    def receipts_expired_before(self) -> datetime:
        return datetime.now(UTC) - timedelta(hours=self.settings.idempotency_hours)

    async def first_answer(self, key: str, digest: str) -> Response | None:
        """The stored answer to this key; a 422 where the key came with another request."""
        receipt = await anyio.to_thread.run_sync(
            self.reviews.receipt, key, self.receipts_expired_before()
        )
        if receipt is None:
            return None
        if receipt.request_digest != digest:
            detail = ErrorDetail(
                field=f"header.{IDEMPOTENCY_HEADER}",
                rule="idempotency_key_reused",
                message="this key came with a different request; use a new key per request",
            )
            return error(422, "the Idempotency-Key was used for another request", [detail])
        version = json.loads(receipt.response)["model_version"]
        return answered_by(version, Response(receipt.response, media_type="application/json"))

    @api.get(
        "/submissions/{submission_id:path}",  # an id may hold "/": sent as is or as %2F
        response_model=SubmissionOutcome,
        responses={
            401: {"model": ErrorResponse},
            404: {"model": ErrorResponse, "description": "no submission scored with these ids"},
            422: {"model": ErrorResponse},
            503: {"model": ErrorResponse},
        },
    )
    async def submission(self, submission_id: str, credential_id: str) -> Any:
        """What became of a scored submission: pending while a reviewer has not decided, then
        the decision, who made it, the levels, the feedback to the educator and the versions;
        the newest decision, with how many came before it. Never the evidence text."""
        answer = await anyio.to_thread.run_sync(
            self.reviews.submission, submission_id, credential_id
        )
        if answer is None:
            detail = ErrorDetail(
                field="path.submission_id",
                rule="not_found",
                message="no submission with this id and credential_id was scored here",
            )
            return error(404, "unknown submission", [detail])
        return JSONResponse(answer.model_dump(mode="json"))

    @api.get("/credentials", response_model=ModelCard, responses={401: {}})
    async def credentials(self, response: Response) -> ModelCard:
        """What the loaded model scores, with each criterion's qualification and stakes, and
        each credential whose audits stopped its auto route."""
        card = await self.model.describe()
        response.headers[MODEL_VERSION_HEADER] = card.model_version
        return with_alarms(card, await self.reviews.stopped(card.model_version))

    @api.post(
        "/reload",
        response_model=ModelCard,
        responses={
            401: {"model": ErrorResponse},
            403: {"model": ErrorResponse, "description": "not the alias this service serves"},
            404: {"model": ErrorResponse, "description": "no such alias or version"},
            503: {"model": ErrorResponse},
        },
    )
    async def reload(self, body: ReloadRequest | None = None) -> Any:
        """Serve the version the alias names now (after `prescore promote`), without downtime."""
        try:
            outcome = await self.model.reload(body.alias if body else None)
        except Exception as failure:  # the old model keeps serving
            logger.warning("reload failed: %s", type(failure).__name__)
            return error(
                503,
                "the model could not be reloaded; the previous version still serves",
                retry_after=RETRY_AFTER_UNAVAILABLE,
            )
        if outcome.card is None:
            assert outcome.refusal is not None  # the model service sends one or the other
            return refused(outcome.refusal)
        return answered_by(
            outcome.card.model_version,
            JSONResponse(outcome.card.model_dump(mode="json")),
        )

    def input_problems(self, items: list[EvidenceToScore]) -> list[ErrorDetail]:
        """What is wrong with the request whichever version scores it; the model host refuses
        the items its version does not score (ScoringModel.input_problems)."""
        limit = self.settings.max_items_per_request
        if len(items) > limit:
            message = f"at most {limit} items per request; split the batch"
            return [ErrorDetail(field="items", rule="too_many_items", message=message)]
        problems = submission_problems(items)
        for i, item in enumerate(items):
            if len(item.text) > self.settings.max_text_chars:
                problems.append(
                    ErrorDetail(
                        field=f"items.{i}.text",
                        rule="text_too_long",
                        message=f"at most {self.settings.max_text_chars} characters",
                    )
                )
        return problems


cast(Any, Prescore).add_asgi_middleware(ServiceKeys)  # the decorator returns a Service
trace_requests_not_messages()

# metrics labelled by the documented routes (FastAPI keeps BentoML's re-bound class views in a
# nested router, so its OpenAPI is the list) and the review pages' root; any other path is one
# label
bound_metric_paths(
    known=lambda: (
        {*api.openapi()["paths"], str(api.docs_url), str(api.openapi_url)}
        | {method.route for method in cast(Any, ScoringRunner).apis.values()}
    ),
    prefixes=(review.path, "/static_content"),
)
