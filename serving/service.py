"""The BentoML services the assessment platform calls.

`Prescore` is the public HTTP API: API keys, strict input, errors that name the field and the
rule and never echo evidence text. It depends on `ScoringRunner`, which holds the registered
model with its routing policy, batches concurrent requests adaptively (BentoML's dispatcher
merges the items of concurrent calls into one model call) and swaps in a new version on
`reload` without dropping requests in flight.

Configured by PRESCORE_* environment variables (serving/settings.py); `prescore serve` sets them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anyio
import bentoml
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response

from prescore.data.schema import CriterionKey
from prescore.eval.routing import Reason
from prescore.serving.auth import key_is_valid, presented_key
from prescore.serving.queue import Receipt, ReviewQueue, submissions_to_review
from prescore.serving.review_app import ROOT as REVIEW_ROOT
from prescore.serving.review_app import connect, create_review_app
from prescore.serving.schemas import (
    ErrorDetail,
    ErrorResponse,
    EvidenceToScore,
    ModelCard,
    ReloadRequest,
    ScoredEvidence,
    ScoreRequest,
    ScoreResponse,
)
from prescore.serving.scoring import ScoringModel, decide_submissions, submission_problems
from prescore.serving.settings import ServiceSettings

logger = logging.getLogger("prescore.serving")

PROTECTED_PATHS = ("/score", "/credentials", "/reload")
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200


def request_digest(body: ScoreRequest) -> str:
    """A digest of the request as sent: a retry matches it, another request does not."""
    return hashlib.sha256(body.model_dump_json().encode("utf-8", "surrogatepass")).hexdigest()


MODEL_VERSION_HEADER = "X-Prescore-Model-Version"


@bentoml.service(name="prescore-model", workers=1, traffic={"timeout": 120})
class ScoringRunner:
    """The model. One worker per replica, so a reload reaches the only copy in memory."""

    def __init__(self) -> None:
        self.settings = ServiceSettings.from_environment()
        self.model = ScoringModel.from_registry(
            self.settings.model_name, self.settings.model_alias, self.settings.runtime
        )
        logger.info("serving %s version %s", self.model.name, self.model.version)

    @bentoml.api(batchable=True, max_batch_size=256, max_latency_ms=5000)
    def predict(self, items: list[EvidenceToScore]) -> list[ScoredEvidence]:
        model = self.model  # one reference per batch: a reload mid-batch cannot mix versions
        return model.score_or_flag(items)

    @bentoml.api
    def describe(self) -> ModelCard:
        return self.model.card()

    @bentoml.api
    def reload(self, alias: str | None = None) -> ModelCard:
        """Load the version the alias names now; requests in flight finish on the old one."""
        fresh = ScoringModel.from_registry(
            self.settings.model_name, alias or self.settings.model_alias, self.settings.runtime
        )
        self.model = fresh  # a single reference swap: atomic for the batches that follow
        logger.info("now serving %s version %s", fresh.name, fresh.version)
        return fresh.card()


api = FastAPI(
    title="prescore scoring API",
    description="Pre-scores educator evidence against a micro-credential rubric.",
    docs_url="/api/docs",
    openapi_url="/api/openapi.json",
    redoc_url=None,
)


def error(status: int, message: str, details: list[ErrorDetail] | None = None) -> JSONResponse:
    body = ErrorResponse(error=message, details=details or [])
    return JSONResponse(body.model_dump(), status_code=status)


@api.exception_handler(RequestValidationError)
async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Field and rule only: pydantic's `input` would echo evidence text back."""
    details = []
    for problem in exc.errors():
        rule = str(problem.get("type", "invalid"))
        location = [str(part) for part in problem.get("loc", ())[1:]]
        field = "body" if rule == "json_invalid" else ".".join(location) or "body"
        message = str(problem.get("msg", "invalid value"))
        if rule == "json_invalid" and location:
            message += f" at character {location[0]}"
        details.append(ErrorDetail(field=field, rule=rule, message=message))
    return error(422, "the request does not match the schema", details)


@api.middleware("http")
async def require_key(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Checked before the body is read, so an unauthenticated caller learns nothing."""
    service = getattr(request.app.state, "service", None)
    if request.url.path.startswith(PROTECTED_PATHS) and service is not None:
        settings: ServiceSettings = service.settings
        if not settings.allow_anonymous and not key_is_valid(
            presented_key(request), settings.api_keys
        ):
            response: Response = error(401, "a valid API key is required")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
    response = await call_next(request)
    if service is not None and service.card is not None:
        response.headers[MODEL_VERSION_HEADER] = service.card.model_version
    return response


review = create_review_app()


@bentoml.service(name="prescore", traffic={"timeout": 120, "max_concurrency": 64})
@bentoml.asgi_app(api, path="/")
@bentoml.asgi_app(review, path=REVIEW_ROOT)
class Prescore:
    runner = bentoml.depends(ScoringRunner)

    def __init__(self) -> None:
        self.settings = ServiceSettings.from_environment()
        self.card: ModelCard | None = None
        self.queue = ReviewQueue(self.settings.review_db)
        connect(review, self.queue, self.settings.session_secret, self.settings.secure_cookies)
        api.state.service = self

    async def model_card(self) -> ModelCard:
        if self.card is None:
            self.card = ModelCard.model_validate(await self.call_runner("describe"))
        return self.card

    async def call_runner(self, method: str, **arguments: Any) -> Any:
        """Call the model service, once more if a pooled connection was closed under us.

        BentoML's internal client keeps connections alive longer than the server does
        (bentoml/BentoML#4971), so a reused one can be gone; predict and describe are safe
        to repeat.
        """
        call = getattr(self.runner.to_async, method)
        try:
            return await call(**arguments)
        except aiohttp.ClientConnectionError:
            logger.info("connection to the model service was closed; calling %s again", method)
            return await call(**arguments)

    @api.post("/score", response_model=ScoreResponse, responses={401: {}, 422: {}, 503: {}})
    async def score(self, body: ScoreRequest, request: Request) -> Any:
        """Pre-score evidence items: level, probabilities, confidence, route and reasons, and a
        decision per submission. With an `Idempotency-Key` header, a retry of the same request
        gets the first answer back and queues nothing twice."""
        key = request.headers.get(IDEMPOTENCY_HEADER)
        digest = request_digest(body)
        if key is not None:
            if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
                detail = ErrorDetail(
                    field=f"header.{IDEMPOTENCY_HEADER}",
                    rule="invalid_idempotency_key",
                    message=f"1 to {MAX_IDEMPOTENCY_KEY} characters",
                )
                return error(422, "the Idempotency-Key header is not usable", [detail])
            answered = await self.first_answer(key, digest)
            if answered is not None:
                return answered
        problems = self.input_problems(body.items, await self.model_card())
        if problems:
            return error(422, "some items cannot be scored as sent", problems)
        raw = await self.call_runner("predict", items=body.items)
        scores = [ScoredEvidence.model_validate(s) for s in raw]
        if any(Reason.unknown_criterion in s.reasons for s in scores):
            self.card = None  # the model was swapped during the request; learn the new card
            return error(503, "the model changed while this request was scored; send it again")
        card = await self.model_card()
        version = scores[0].model_version if scores else card.model_version
        if card.model_version != version:  # swapped since the card was read: read it again
            self.card = None
            card = await self.model_card()
            if card.model_version != version:  # swapped again: decide nothing on a stranger's
                return error(503, "the model changed while this request was scored; send it again")
        submissions = decide_submissions(body.items, scores, card)
        # every human-routed decision and the audit sample, committed before the answer in one
        # transaction: an acknowledged submission is never lost, nor half queued
        to_review = submissions_to_review(
            body.items, scores, submissions, card, self.settings.audit_rate
        )
        response = ScoreResponse(
            model_name=card.model_name,
            model_version=version,
            runtime=scores[0].runtime,
            scores=scores,
            submissions=submissions,
        )
        receipt = None if key is None else Receipt(key, digest, response.model_dump_json())
        try:
            await anyio.to_thread.run_sync(self.queue.enqueue, to_review, receipt)
        except IntegrityError:
            if key is not None:  # the same key was answered meanwhile: give that answer
                answered = await self.first_answer(key, digest)
                if answered is not None:
                    return answered
            logger.error("the review queue refused a request: IntegrityError")
            return error(503, "the review queue is unavailable; nothing was stored, send it again")
        except SQLAlchemyError as failure:  # nothing was stored; the type only, never the row
            logger.error("the review queue could not store a request: %s", type(failure).__name__)
            return error(503, "the review queue is unavailable; nothing was stored, send it again")
        return response

    async def first_answer(self, key: str, digest: str) -> Response | None:
        """The stored answer to this key; a 422 where the key came with another request."""
        receipt = await anyio.to_thread.run_sync(self.queue.receipt, key)
        if receipt is None:
            return None
        if receipt.request_digest != digest:
            detail = ErrorDetail(
                field=f"header.{IDEMPOTENCY_HEADER}",
                rule="idempotency_key_reused",
                message="this key came with a different request; use a new key per request",
            )
            return error(422, "the Idempotency-Key was used for another request", [detail])
        return Response(receipt.response, media_type="application/json")

    @api.get("/credentials", response_model=ModelCard, responses={401: {}})
    async def credentials(self) -> ModelCard:
        """What the loaded model scores, with each criterion's qualification and stakes."""
        return await self.model_card()

    @api.post("/reload", response_model=ModelCard, responses={401: {}, 503: {}})
    async def reload(self, body: ReloadRequest | None = None) -> Any:
        """Serve the version the alias names now (after `prescore promote`), without downtime."""
        try:
            card = ModelCard.model_validate(
                await self.runner.to_async.reload(alias=body.alias if body else None)
            )
        except Exception as failure:  # the old model keeps serving
            logger.warning("reload failed: %s", type(failure).__name__)
            return error(503, "the model could not be reloaded; the previous version still serves")
        self.card = card
        return card

    def input_problems(self, items: list[EvidenceToScore], card: ModelCard) -> list[ErrorDetail]:
        limit = self.settings.max_items_per_request
        if len(items) > limit:
            message = f"at most {limit} items per request; split the batch"
            return [ErrorDetail(field="items", rule="too_many_items", message=message)]
        known = card.criteria_by_key()
        credentials = {credential for credential, _ in known}
        problems = submission_problems(items)
        for i, item in enumerate(items):
            if item.credential_id not in credentials:
                problems.append(
                    ErrorDetail(
                        field=f"items.{i}.credential_id",
                        rule="unknown_credential",
                        message="this model does not score that credential; see GET /credentials",
                    )
                )
            elif CriterionKey(item.credential_id, item.criterion_id) not in known:
                problems.append(
                    ErrorDetail(
                        field=f"items.{i}.criterion_id",
                        rule="unknown_criterion",
                        message="this credential has no such criterion in the loaded model; "
                        "see GET /credentials",
                    )
                )
            if len(item.text) > self.settings.max_text_chars:
                problems.append(
                    ErrorDetail(
                        field=f"items.{i}.text",
                        rule="text_too_long",
                        message=f"at most {self.settings.max_text_chars} characters",
                    )
                )
        return problems
