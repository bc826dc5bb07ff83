"""What an operator configures, read from PRESCORE_* environment variables.

Environment variables, not flags, because `bentoml serve` and `bentoml containerize` images
start the service themselves; `prescore serve` sets them from its options.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prescore import defaults


class ConfigurationError(RuntimeError):
    """The service cannot start as configured; the message says what to set."""


def secret_from(env: os._Environ[str] | dict[str, str]) -> str:
    """The reviewers' session key: PRESCORE_SESSION_SECRET(_FILE), else one per process (then
    a restart signs everyone out)."""
    secret = env.get("PRESCORE_SESSION_SECRET", "")
    key_file = env.get("PRESCORE_SESSION_SECRET_FILE")
    if not secret and key_file and Path(key_file).is_file():
        secret = Path(key_file).read_text().strip()
    return secret or secrets.token_urlsafe(32)


ENVIRONMENT = {  # variable -> field, for the settings given as plain values
    "PRESCORE_MODEL": "model_name",
    "PRESCORE_MODEL_ALIAS": "model_alias",
    "PRESCORE_MAX_ITEMS": "max_items_per_request",
    "PRESCORE_MAX_TEXT_CHARS": "max_text_chars",
    "PRESCORE_MAX_REQUEST_TOKENS": "max_request_tokens",
    "PRESCORE_MAX_BATCH_TOKENS": "max_batch_tokens",
    "PRESCORE_MAX_QUEUE_SECONDS": "max_queue_seconds",
    "PRESCORE_MODEL_STREAMS": "model_streams",
    "PRESCORE_MAX_CONCURRENT": "max_concurrent_requests",
    "PRESCORE_REVIEW_DB": "review_db",
    "PRESCORE_AUDIT_RATE": "audit_rate",
    "PRESCORE_IDEMPOTENCY_HOURS": "idempotency_hours",
    "PRESCORE_AUDIT_ALARM_REFRESH_SECONDS": "audit_alarm_refresh_seconds",
    "PRESCORE_SECURE_COOKIES": "secure_cookies",
    "PRESCORE_SESSION_IDLE_MINUTES": "session_idle_minutes",
    "PRESCORE_RUNTIME": "runtime",
    "PRESCORE_MODEL_PROCESS": "model_process",
}


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str = defaults.MODEL_NAME
    model_alias: str = Field(
        defaults.MODEL_ALIAS, description="registry alias, or a version number"
    )
    api_keys: tuple[str, ...] = Field(default=(), repr=False)  # never in reprs or logs
    allow_anonymous: bool = False
    max_items_per_request: int = Field(defaults.MAX_ITEMS_PER_REQUEST, ge=1)
    max_text_chars: int = Field(defaults.MAX_TEXT_CHARS, ge=1, le=defaults.MAX_TEXT_CHARS_CEILING)
    max_request_tokens: int = Field(
        defaults.MAX_REQUEST_TOKENS, ge=1, description="tokens of evidence one request may hold"
    )
    max_batch_tokens: int = Field(
        defaults.MAX_BATCH_TOKENS, ge=1, description="tokens merged into one model call"
    )
    max_queue_seconds: float = Field(
        defaults.MAX_QUEUE_SECONDS, gt=0, description="longest wait for the model before a 503"
    )
    model_streams: int = Field(
        defaults.MODEL_STREAMS,
        ge=1,
        le=64,
        description="model calls that may run side by side under load (PyTorch runtimes)",
    )
    max_concurrent_requests: int = Field(
        defaults.MAX_CONCURRENT_REQUESTS, ge=1, description="/score requests in progress at once"
    )
    review_db: str = Field(defaults.REVIEW_DB, description="SQLAlchemy URL")
    audit_rate: float = Field(
        defaults.AUDIT_RATE, ge=0, le=1, description="share of auto items also queued"
    )
    idempotency_hours: float = Field(
        defaults.IDEMPOTENCY_HOURS,
        gt=0,
        description="how long a retry with the same Idempotency-Key gets the first answer back; "
        "older receipts are deleted",
    )
    audit_alarm_refresh_seconds: float = Field(
        5.0,
        ge=0,
        description="how often the service rereads which credentials their audits stopped",
    )
    session_secret: str = Field(default="", repr=False)
    secure_cookies: bool = Field(
        False, description="behind TLS: reviewers' session cookies travel over HTTPS only"
    )
    session_idle_minutes: float = Field(
        defaults.SESSION_IDLE_MINUTES,
        gt=0,
        description="a reviewer's session unused this long ends: they sign in again",
    )
    trusted_proxies: tuple[str, ...] = Field(
        (),
        description="addresses or networks (CIDR) of the reverse proxies in front of the "
        "service: only a request from one of them has its X-Forwarded-For read, for the "
        "reviewer's address that sign-in throttling counts by; none by default",
    )
    runtime: Literal["auto", "torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8"] = Field(
        "auto",
        description="auto: the fastest copy that passed its check and runs natively here, "
        "else PyTorch fp32; torch-fp32 forces PyTorch",
    )
    model_process: Literal["inline", "separate"] = Field(
        "inline",
        description="inline: the model runs in the API's process (no hop between the two); "
        "separate: in a BentoML model service of its own",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: tuple[str, ...]) -> tuple[str, ...]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"PRESCORE_TRUSTED_PROXIES: {proxy!r} is not an IP address or network; "
                    "give the proxies' addresses, comma-separated (10.0.0.5, 10.0.0.0/24)"
                ) from None
        return proxies

    @classmethod
    def from_environment(cls) -> ServiceSettings:
        env = os.environ
        keys = [k.strip() for k in env.get("PRESCORE_API_KEYS", "").split(",") if k.strip()]
        key_file = env.get("PRESCORE_API_KEYS_FILE")
        if key_file:
            path = Path(key_file)
            if not path.is_file():
                raise ConfigurationError(f"PRESCORE_API_KEYS_FILE={key_file} is not a file")
            keys += [line.strip() for line in path.read_text().splitlines() if line.strip()]
        # pydantic parses the strings given; the fields left out keep their defaults
        given = {field: env[name] for name, field in ENVIRONMENT.items() if name in env}
        settings = cls.model_validate(
            {
                **given,
                "api_keys": tuple(keys),
                "trusted_proxies": tuple(
                    p.strip()
                    for p in env.get("PRESCORE_TRUSTED_PROXIES", "").split(",")
                    if p.strip()
                ),
                "allow_anonymous": env.get("PRESCORE_ALLOW_ANONYMOUS", "") == "1",
                "session_secret": secret_from(env),
            }
        )
        if not settings.api_keys and not settings.allow_anonymous:
            raise ConfigurationError(
                "no API key is configured: set PRESCORE_API_KEYS (comma-separated) or "
                "PRESCORE_API_KEYS_FILE (one key per line); PRESCORE_ALLOW_ANONYMOUS=1 serves "
                "without keys, for a private network only"
            )
        return settings
