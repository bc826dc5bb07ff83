"""Text vectors kept on disk between fits, so benchmark folds encode each text once.

SQLite from the standard library: one file, safe for several processes, no extra dependency.
Keys are digests of namespace and text, so the cache holds no evidence text.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np


class EmbeddingCache:
    def __init__(self, folder: Path, namespace: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "embeddings.sqlite"
        self.namespace = namespace
        with sqlite3.connect(self.path, timeout=60) as db:
            db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB)")

    def key(self, text: str) -> str:
        payload = f"{self.namespace}\n{text}".encode("utf-8", "surrogatepass")
        return hashlib.sha256(payload).hexdigest()

    def get(self, texts: list[str]) -> dict[str, np.ndarray]:
        keys = {self.key(t): t for t in texts}
        found: dict[str, np.ndarray] = {}
        with sqlite3.connect(self.path, timeout=60) as db:
            listed = list(keys)
            for start in range(0, len(listed), 500):
                chunk = listed[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, vector FROM vectors WHERE key IN ({marks})"
                for key, blob in db.execute(query, chunk):
                    found[keys[key]] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        rows = [(self.key(t), np.asarray(v, np.float32).tobytes()) for t, v in vectors.items()]
        with sqlite3.connect(self.path, timeout=60) as db:
            db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
