"""Drop repeated evidence so a copy never sits on both sides of a split or counts twice."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from prescore.data.schema import EvidenceItem

_NOT_WORD = re.compile(r"[\W_]+")


def normalise_text(text: str) -> str:
    """Text with case, Unicode forms, punctuation and spacing folded away.

    Two submissions that differ only in those (a re-pasted essay, smart quotes, a trailing
    newline) are the same evidence.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _NOT_WORD.sub(" ", folded).strip()


@dataclass(frozen=True)
class DedupeResult:
    kept: list[EvidenceItem]
    exact: int
    near_exact: int


def drop_duplicates(items: list[EvidenceItem]) -> DedupeResult:
    """Keep the first item of each (credential, criterion, text); count what was dropped."""
    seen_exact: set[tuple[str, str, str]] = set()
    seen_normalised: set[tuple[str, str, str]] = set()
    kept: list[EvidenceItem] = []
    exact = near_exact = 0
    for item in items:
        exact_key = (item.credential_id, item.criterion_id, _digest(item.text))
        normal_key = (item.credential_id, item.criterion_id, _digest(normalise_text(item.text)))
        if exact_key in seen_exact:
            exact += 1
            continue
        if normal_key in seen_normalised:
            near_exact += 1
            continue
        seen_exact.add(exact_key)
        seen_normalised.add(normal_key)
        kept.append(item)
    return DedupeResult(kept=kept, exact=exact, near_exact=near_exact)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
