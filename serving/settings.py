"""What an operator configures, read from PRESCORE_* environment variables.

Environment variables, not flags, because `bentoml serve` and `bentoml containerize` images
start the service themselves; `prescore serve` sets them from its options.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from prescore.serving.schemas import MAX_TEXT_CHARS


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


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str = "prescore-quickstart"
    model_alias: str = Field("champion", description="registry alias, or a version number")
    api_keys: tuple[str, ...] = Field(default=(), repr=False)  # never in reprs or logs
    allow_anonymous: bool = False
    max_items_per_request: int = Field(100, ge=1)
    max_text_chars: int = Field(50_000, ge=1, le=MAX_TEXT_CHARS)
    review_db: str = Field("sqlite:///.prescore/review.db", description="SQLAlchemy URL")
    audit_rate: float = Field(0.05, ge=0, le=1, description="share of auto items also queued")
    session_secret: str = Field(default="", repr=False)

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
        settings = cls(
            model_name=env.get("PRESCORE_MODEL", cls.model_fields["model_name"].default),
            model_alias=env.get("PRESCORE_MODEL_ALIAS", cls.model_fields["model_alias"].default),
            api_keys=tuple(keys),
            allow_anonymous=env.get("PRESCORE_ALLOW_ANONYMOUS", "") == "1",
            max_items_per_request=int(env.get("PRESCORE_MAX_ITEMS", "100")),
            max_text_chars=int(env.get("PRESCORE_MAX_TEXT_CHARS", "50000")),
            review_db=env.get("PRESCORE_REVIEW_DB", cls.model_fields["review_db"].default),
            audit_rate=float(env.get("PRESCORE_AUDIT_RATE", "0.05")),
            session_secret=secret_from(env),
        )
        if not settings.api_keys and not settings.allow_anonymous:
            raise ConfigurationError(
                "no API key is configured: set PRESCORE_API_KEYS (comma-separated) or "
                "PRESCORE_API_KEYS_FILE (one key per line); PRESCORE_ALLOW_ANONYMOUS=1 serves "
                "without keys, for a private network only"
            )
        return settings
