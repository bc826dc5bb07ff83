"""Files that hold evidence: readable by their owner only, and written whole or not at all.

Evidence text (an export, a request body kept for the quick-start) must not be left readable
by others, nor half-written, nor behind as a temporary copy that nothing records.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private(path: Path, text: str) -> Path:
    """`text` to `path`, created 0600 under a unique hidden name and renamed into place; the
    temporary copy is removed whatever fails. Returns the path, resolved."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as sink:
            sink.write(text)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path.resolve()
