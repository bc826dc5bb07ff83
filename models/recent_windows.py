"""Token windows handed from the service's token count to the scoring of the same texts.

The service tokenizes a request's texts to count them against its token budget (to refuse or
queue it), and the scorer tokenized them again moments later to encode them: about a millisecond
per 300-word essay spent twice (issue 15: "tokenize once"). The count leaves each text's windows
here, on whichever thread counted, and the scorer takes them, on the model's thread.

Bounded: a request counted but never scored (refused, or its caller gone) leaves its windows
until newer texts push them out. Keys are digests, so no evidence text is kept as a key.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

Windows = list[list[int]]

MOST_TEXTS = 512  # more than the texts of the requests one service holds in its queue at once


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class RecentWindows:
    def __init__(self, most: int = MOST_TEXTS) -> None:
        self.most = most
        self._windows: OrderedDict[bytes, Windows] = OrderedDict()
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[type[RecentWindows], tuple[int]]:
        """A copy (deepcopy, pickle) starts empty: what it holds belongs to one process."""
        return RecentWindows, (self.most,)

    def __len__(self) -> int:
        return len(self._windows)

    def put(self, text: str, windows: Windows) -> None:
        key = text_key(text)
        with self._lock:
            self._windows[key] = windows
            self._windows.move_to_end(key)
            while len(self._windows) > self.most:
                self._windows.popitem(last=False)

    def take(self, text: str) -> Windows | None:
        """The windows left for `text`, removed: each count serves one scoring."""
        with self._lock:
            return self._windows.pop(text_key(text), None)
