"""Reviewer accounts: scrypt password hashes (standard library), credential assignment, and
each reviewer's kind (expert / peer) and administrator flag."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from sqlalchemy import select

from prescore.data.schema import RaterKind
from prescore.review.database import Database
from prescore.review.tables import PEER, Reviewer, ReviewerRole, SessionToken, SubmissionEntry

SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    _, salt, digest = stored.split("$")
    given = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **SCRYPT)
    return hmac.compare_digest(given, bytes.fromhex(digest))


def high_stakes_credentials(queue: Database, credentials: list[str]) -> list[str]:
    """Those of `credentials` the queue knows as high stakes (from the submissions it holds,
    whose stakes come from the credential's rubric)."""
    query = (
        select(SubmissionEntry.credential_id)
        .where(SubmissionEntry.credential_id.in_(credentials), SubmissionEntry.stakes == "high")
        .distinct()
    )
    with queue.sessions() as session:
        return sorted(session.scalars(query))


def set_reviewer(
    queue: Database,
    name: str,
    password: str | None,
    credentials: list[str],
    kind: str | None = None,
    admin: bool | None = None,
) -> None:
    """Create or update a reviewer; `credentials` replaces their assignment. `kind` (expert /
    peer) and `admin` left None keep what the reviewer had (a new one without a kind is an
    expert, as every reviewer was before kinds); `password` None keeps theirs. Every problem
    raises ValueError before anything is written."""
    problems = []
    if password is not None and len(password) < 8:
        problems.append("a reviewer password needs at least 8 characters")
    if kind is not None and kind not in {k.value for k in RaterKind}:
        problems.append(f"unknown reviewer kind {kind!r}: use --kind expert or --kind peer")
    with queue.sessions() as session:
        existing = session.get(Reviewer, name)
        role = session.get(ReviewerRole, name)
    if existing is None and password is None:
        problems.append(f"there is no reviewer {name!r} yet: give them a password")
    effective_kind = kind or (role.kind if role else None)
    if effective_kind == PEER:
        high = high_stakes_credentials(queue, credentials)
        if high:
            problems.append(
                f"{', '.join(high)} {'is' if len(high) == 1 else 'are'} high stakes, decided by "
                "experts only: assign peers to low-stakes credentials, or add this reviewer "
                "with --kind expert"
            )
    if problems:
        raise ValueError("; ".join(problems))
    with queue.writing() as session:
        reviewer = session.get(Reviewer, name) or Reviewer(name=name)
        if password is not None:
            reviewer.password_hash = hash_password(password)
        reviewer.credentials = sorted(set(credentials))
        session.add(reviewer)
        if kind is not None or admin is not None:
            stored = session.get(ReviewerRole, name) or ReviewerRole(
                name=name, kind="expert", admin=False
            )
            stored.kind = kind or stored.kind
            stored.admin = stored.admin if admin is None else admin
            session.add(stored)
    if password is not None:
        end_sessions(queue, name)  # a new password signs everyone out


def session_token(queue: Database, name: str) -> str:
    """The token a session of `name` must carry now (created on first use)."""
    with queue.writing() as session:
        current = session.get(SessionToken, name)
        if current is None:
            current = SessionToken(name=name, token=secrets.token_urlsafe(32))
            session.add(current)
        return current.token


def session_is_current(queue: Database, name: str, token: object) -> bool:
    with queue.sessions() as session:
        current = session.get(SessionToken, name)
    return (
        current is not None
        and isinstance(token, str)
        and secrets.compare_digest(current.token, token)
    )


def end_sessions(queue: Database, name: str) -> None:
    """Every session of `name` ends: its cookies carry a token that is no longer current."""
    with queue.writing() as session:
        current = session.get(SessionToken, name) or SessionToken(name=name)
        current.token = secrets.token_urlsafe(32)
        session.add(current)


MAX_THROTTLED_KEYS = 10_000  # about 3 MB of digests and failure times


class SignInThrottle:
    """At most `per_pair` failed sign-ins for one name from one address, and `per_address`
    from one address whatever the names, in `window` seconds; past that, sign-in from that
    address (for that name, or for any) is refused for the rest of the window without checking
    the password, so a guesser gets a few tries, not thousands, and the scrypt work stays
    bounded. A name is never locked out as such: a stranger's failures from their address
    leave its reviewer free to sign in from theirs (a guesser with many addresses gets
    `per_pair` tries from each, which long random passwords withstand; locking the name would
    hand any stranger a way to shut a reviewer out). In memory, per process: enough for one
    replica; several replicas each keep their own count.

    Its memory is bounded whatever the client sends: a key is kept as a fixed-size digest (a
    name of a megabyte costs what a short one does), only a failed sign-in adds one (asking
    whether a key is throttled never does), and past `max_keys` the key whose latest failure
    is oldest goes first."""

    def __init__(
        self,
        per_pair: int = 5,
        per_address: int = 20,
        window: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_THROTTLED_KEYS,
    ) -> None:
        self.per_pair = per_pair
        self.per_address = per_address
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        # digest -> failure times, least recently failed first
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()

    @staticmethod
    def _slot(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    def _budgets(self, name: str, address: str) -> list[tuple[str, int]]:
        """Each key's digest and its allowance; the NUL cannot occur in an address, so no
        name/address split is read as another."""
        return [
            (self._slot(f"pair:{address}\0{name}"), self.per_pair),
            (self._slot(f"address:{address}"), self.per_address),
        ]

    def _recent(self, slot: str) -> deque[float]:
        failures, now = self.failures.get(slot, deque()), self.clock()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, name: str, address: str) -> float:
        """Seconds until `name` may try to sign in from `address` again; 0 if it may now."""
        waits = [
            failures[-allowed] + self.window - self.clock()
            for slot, allowed in self._budgets(name, address)
            if len(failures := self._recent(slot)) >= allowed
        ]
        return max(waits, default=0.0)

    def failed(self, name: str, address: str) -> None:
        for slot, _ in self._budgets(name, address):
            failures = self._recent(slot)
            failures.append(self.clock())
            self.failures[slot] = failures
            self.failures.move_to_end(slot)
        while len(self.failures) > self.max_keys:
            self.failures.popitem(last=False)


@functools.cache
def stand_in_hash() -> str:
    """Checked against when the name is unknown, so that answer costs one scrypt, like a
    known name's; hashed once, not per attempt, which would cost a second."""
    return hash_password(secrets.token_urlsafe(16))


def authenticate(queue: Database, name: str, password: str) -> Reviewer | None:
    with queue.sessions() as session:
        reviewer = session.get(Reviewer, name)
    if reviewer is None:
        password_matches(password, stand_in_hash())  # same work either way
        return None
    return reviewer if password_matches(password, reviewer.password_hash) else None


def assigned(queue: Database, name: str) -> list[str]:
    with queue.sessions() as session:
        reviewer = session.get(Reviewer, name)
    return list(reviewer.credentials) if reviewer else []
