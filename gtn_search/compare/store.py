"""The comparison's SQLite store: ground-truth trainings and proxy scores, keyed so they are reused.

Every row is committed as soon as it is computed, so an interrupted ``gtn-search compare`` loses at
most the evaluation in progress. Rows are keyed by the architecture hash and a digest of everything
that determines the result (evaluator options, blueprint, dataset, recipe, seed): changing a
setting computes new rows and never mixes results.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from gtn_search.errors import StorageError

SCHEMA = """
CREATE TABLE IF NOT EXISTS ground_truth (
    key TEXT NOT NULL, hash TEXT NOT NULL, status TEXT NOT NULL, result TEXT NOT NULL,
    PRIMARY KEY (key, hash));
CREATE TABLE IF NOT EXISTS proxy (
    key TEXT NOT NULL, hash TEXT NOT NULL, status TEXT NOT NULL, score REAL, flops REAL, seconds REAL,
    result TEXT NOT NULL, PRIMARY KEY (key, hash))
"""


def digest(data: Any) -> str:
    """A stable key for JSON-able settings."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:24]


class CompareStore:
    """Ground-truth trainings and proxy results of one comparison (the searches keep their own studies)."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        """Open (and create, unless ``read_only``) the store; a read-only store must exist and never
        writes, so it can watch a comparison that is running."""
        self.path = Path(path)
        try:
            if read_only:
                if not self.path.is_file():
                    raise StorageError(f"{self.path} does not exist: nothing of this comparison has been computed "
                                       f"yet (run gtn-search compare without --status to start it)")
                self.conn = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True, timeout=30,
                                            isolation_level=None)
                self.conn.execute("SELECT count(*) FROM ground_truth").fetchone()
                self.conn.execute("SELECT count(*) FROM proxy").fetchone()
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            for statement in SCHEMA.strip().split(";"):
                self.conn.execute(statement)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{self.path}: not a readable comparison database ({exc}); move it away to start "
                               f"afresh") from None

    def ground_truth(self, key: str, arch_hash: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT result FROM ground_truth WHERE key=? AND hash=?", (key, arch_hash)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_ground_truth(self, key: str, arch_hash: str, status: str, result: dict[str, Any]) -> None:
        self.conn.execute("INSERT OR REPLACE INTO ground_truth VALUES (?, ?, ?, ?)",
                          (key, arch_hash, status, json.dumps(result)))

    def proxy(self, key: str, arch_hash: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT result FROM proxy WHERE key=? AND hash=?", (key, arch_hash)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_proxy(self, key: str, arch_hash: str, result: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO proxy VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, arch_hash, result["status"], result.get("score"),
             result.get("train_flops", 0.0) + result.get("eval_flops", 0.0), result.get("wall_seconds"),
             json.dumps(result)),
        )

    def close(self) -> None:
        self.conn.close()
