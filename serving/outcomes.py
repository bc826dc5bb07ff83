"""What the model side answers the API: scores with the card of the version that made them, or
a refusal saying why not. Values, not exceptions, so an expected refusal never writes a
traceback, and they cross the process boundary between the services unchanged."""

from __future__ import annotations

from pydantic import BaseModel, Field

from prescore.serving.schemas import ErrorDetail, ModelCard, ScoredEvidence, SubmissionDecision

RETRY_AFTER_UNAVAILABLE = 5  # seconds: the model service is restarting or failed a batch


class Refusal(BaseModel):
    status: int
    error: str
    details: list[ErrorDetail] = Field(default_factory=list)
    retry_after: int | None = None


class ScoringOutcome(BaseModel):
    """The scores and the submissions' decisions, with the card of the one version that made
    them all (a reload may land while a request is in flight), or why the request was not
    scored."""

    scores: list[ScoredEvidence] = Field(default_factory=list)
    submissions: list[SubmissionDecision] = Field(default_factory=list)
    card: ModelCard | None = None
    refusal: Refusal | None = None


class ReloadOutcome(BaseModel):
    card: ModelCard | None = None
    refusal: Refusal | None = None


def no_such_version(model_name: str, wanted: str) -> Refusal:
    detail = ErrorDetail(
        field="alias",
        rule="unknown_version",
        message=f"{model_name} has no alias or version {wanted!r}; `prescore models` lists them",
    )
    return Refusal(status=404, error="no such model version; nothing changed", details=[detail])


def not_the_served_alias(asked: str, served: str) -> Refusal:
    detail = ErrorDetail(
        field="alias",
        rule="not_the_served_alias",
        message=f"this service serves {served!r}, not {asked!r}: move {served!r} with "
        "`prescore promote`, then reload, or start the service on another alias",
    )
    return Refusal(status=403, error="only promotion chooses the served version", details=[detail])


def too_many_tokens(tokens: int, limit: int, at_least: bool = False) -> Refusal:
    held = f"at least {tokens:,}" if at_least else f"{tokens:,}"
    message = (
        f"the items hold {held} tokens of evidence; at most {limit:,} per request: "
        "send fewer or shorter items per request"
    )
    return Refusal(
        status=413,
        error="the request is more work than one request may be",
        details=[ErrorDetail(field="items", rule="too_many_tokens", message=message)],
    )


def cannot_score(details: list[ErrorDetail]) -> Refusal:
    """Items the loaded version does not score (an unknown credential or criterion)."""
    return Refusal(status=422, error="some items cannot be scored as sent", details=details)


def model_busy(retry_after: int) -> Refusal:
    return Refusal(
        status=503,
        error="the model is busy; nothing was scored or stored, send it again after Retry-After",
        retry_after=retry_after,
    )


def scoring_failed() -> Refusal:
    return Refusal(
        status=503,
        error="the model could not score this request; nothing was stored, send it again",
        retry_after=RETRY_AFTER_UNAVAILABLE,
    )
