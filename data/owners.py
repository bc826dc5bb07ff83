"""Whose evidence a model learned from, recorded without saying who: each educator id as a
keyed hash (HMAC-SHA256) under a salt only the operator holds.

Training logs the hashes of every educator in its data beside the run; `prescore forget`
hashes the id it is given with the same salt and finds the runs, and so the model versions,
that used their evidence. Without the salt the hashes cannot be tested against guessed ids,
and no text or raw id leaves the data stage.

The salt is PRESCORE_EDUCATOR_SALT, or the file PRESCORE_EDUCATOR_SALT_FILE names (default
.prescore/educator-salt, created 0600 with a random salt by the first training run). Every
machine that trains or forgets must share it: a run hashed under another salt is reported as
unknown, never as "not trained on them".
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

SALT_VARIABLE = "PRESCORE_EDUCATOR_SALT"
SALT_FILE_VARIABLE = "PRESCORE_EDUCATOR_SALT_FILE"
DEFAULT_SALT_FILE = Path(".prescore/educator-salt")
EDUCATORS_ARTIFACT = "educators.json"  # beside each training run, in MLflow
EDUCATORS_TAG = "prescore.educators"  # a run carrying the record; its value: how many


class EducatorRecord(BaseModel):
    """The artifact a training run logs: the salt's fingerprint and one hash per educator."""

    salt_check: str
    educators: list[str]


def salt_file() -> Path:
    return Path(os.environ.get(SALT_FILE_VARIABLE) or DEFAULT_SALT_FILE)


def educator_salt(create: bool = False) -> str | None:
    """The salt from the setting or its file; with `create`, a new random one written to a file
    only its owner reads. None where there is none and `create` is off."""
    given = os.environ.get(SALT_VARIABLE, "").strip()
    if given:
        return given
    path = salt_file()
    if path.is_file():
        return path.read_text().strip() or None
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    # written whole beside it, then linked into place: two first runs at once agree on one
    # salt, and no reader ever sees an empty file
    draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    try:
        os.link(draft, path)  # fails where another run's salt is already in place
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_text().strip()


def educator_hash(educator_id: str, salt: str) -> str:
    return hmac.new(
        salt.encode(), educator_id.encode("utf-8", "surrogatepass"), "sha256"
    ).hexdigest()


def salt_check(salt: str) -> str:
    """A fingerprint of the salt, stored with the hashes: forget can tell a run hashed under
    another salt from one that did not use the educator's evidence."""
    return hashlib.sha256(b"prescore educator salt\0" + salt.encode()).hexdigest()[:16]


def educator_record(educator_ids: Iterable[str], salt: str) -> EducatorRecord:
    hashes = sorted({educator_hash(str(educator_id), salt) for educator_id in educator_ids})
    return EducatorRecord(salt_check=salt_check(salt), educators=hashes)
