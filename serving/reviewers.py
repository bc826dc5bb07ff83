"""Reviewer accounts: scrypt password hashes (standard library) and credential assignment."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from prescore.serving.queue import Reviewer, ReviewQueue

SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    _, salt, digest = stored.split("$")
    given = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **SCRYPT)
    return hmac.compare_digest(given, bytes.fromhex(digest))


def set_reviewer(queue: ReviewQueue, name: str, password: str, credentials: list[str]) -> None:
    """Create or update a reviewer; `credentials` replaces their assignment."""
    if len(password) < 8:
        raise ValueError("a reviewer password needs at least 8 characters")
    with queue.sessions.begin() as session:
        reviewer = session.get(Reviewer, name) or Reviewer(name=name)
        reviewer.password_hash = hash_password(password)
        reviewer.credentials = sorted(set(credentials))
        session.add(reviewer)


@functools.cache
def stand_in_hash() -> str:
    """Checked against when the name is unknown, so that answer costs one scrypt, like a
    known name's; hashed once, not per attempt, which would cost a second."""
    return hash_password(secrets.token_urlsafe(16))


def authenticate(queue: ReviewQueue, name: str, password: str) -> Reviewer | None:
    with queue.sessions() as session:
        reviewer = session.get(Reviewer, name)
    if reviewer is None:
        password_matches(password, stand_in_hash())  # same work either way
        return None
    return reviewer if password_matches(password, reviewer.password_hash) else None


def assigned(queue: ReviewQueue, name: str) -> list[str]:
    with queue.sessions() as session:
        reviewer = session.get(Reviewer, name)
    return list(reviewer.credentials) if reviewer else []
