"""Token windows handed from the service's token count to the scoring of the same texts.

The service tokenizes a request's texts to count them against its token budget (to refuse or
queue it), and the scorer tokenized them again moments later to encode them: about a millisecond
per 300-word essay spent twice (issue 15: "tokenize once"). The count leaves each text's windows
here, on whichever thread counted, and the scorer takes them, on the model's thread.

Bounded by tokens, not texts (a text may hold 200,000 characters): a request counted but never
scored (refused, or its caller gone) leaves its windows until newer texts push them out. Keys
are digests, so no evidence text is kept as a key.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

Windows = list[list[int]]

# about 40 MB of Python ints: the windows of 30 requests of the largest size (MAX_REQUEST_TOKENS)
MOST_TOKENS = 1_000_000


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class RecentWindows:
    def __init__(self, most_tokens: int = MOST_TOKENS) -> None:
        self.most_tokens = most_tokens
        self.tokens = 0
        self._windows: OrderedDict[bytes, Windows] = OrderedDict()
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[type[RecentWindows], tuple[int]]:
        """A copy (deepcopy, pickle) starts empty: what it holds belongs to one process."""
        return RecentWindows, (self.most_tokens,)

    def __len__(self) -> int:
        return len(self._windows)

    def put(self, text: str, windows: Windows) -> None:
        """Keep `windows` for `text`; the oldest go first when the tokens pass the bound, and a
        text larger than the bound alone is not kept (its scoring tokenizes it again)."""
        size = sum(len(w) for w in windows)
        if size > self.most_tokens:
            return
        key = text_key(text)
        with self._lock:
            self._drop(key)
            self._windows[key] = windows
            self.tokens += size
            while self.tokens > self.most_tokens:
                self._drop(next(iter(self._windows)))

    def take(self, text: str) -> Windows | None:
        """The windows left for `text`, removed: each count serves one scoring."""
        with self._lock:
            return self._drop(text_key(text))

    def _drop(self, key: bytes) -> Windows | None:
        windows = self._windows.pop(key, None)
        if windows is not None:
            self.tokens -= sum(len(w) for w in windows)
        return windows
