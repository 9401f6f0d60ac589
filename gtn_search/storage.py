"""Study storage in SQLite: every trial, its result and cost, and strategy-state snapshots.

A study database is the search's event log. Each trial row records when it was asked and told
(one global event sequence), so a study can be resumed exactly: load the latest strategy snapshot,
replay the later ask/tell events from the trial rows, re-run the trials that were in flight.
Writes are transactions in WAL mode; a result is committed before the strategy hears of it, so a
crash (even SIGKILL) never loses a finished trial. The database is chosen by a path or a
``sqlite:///path`` URL (embedded, nothing to install).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gtn_search.configio import writable_folder
from gtn_search.errors import StorageError

SCHEMA_VERSION = 2
#: version 2 (objectives): trials may be 'infeasible' (a constraint was broken; never trained) and
#: carry an ``objectives`` column (JSON: every measured objective value). A version-1 study opens
#: read-only as it is and is migrated in place, in one transaction, when a search writes to it.

#: ``PRAGMA application_id`` of studies ("GTNS"); studies made before it was set have 0.
APPLICATION_ID = 0x47544E53

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    number INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    genotype TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'cached', 'infeasible')),
    score REAL,
    error TEXT,
    wall_seconds REAL,
    sgd_steps INTEGER,
    images_seen INTEGER,
    train_flops REAL,
    eval_flops REAL,
    params INTEGER,
    metrics TEXT,
    objectives TEXT,
    worker TEXT,
    seed INTEGER,
    cached_from INTEGER,
    asked_at REAL NOT NULL,
    finished_at REAL,
    ask_event INTEGER NOT NULL,
    tell_event INTEGER
);
CREATE INDEX IF NOT EXISTS trials_hash ON trials (hash);
CREATE INDEX IF NOT EXISTS trials_tell_event ON trials (tell_event);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    event INTEGER NOT NULL,
    state TEXT NOT NULL,
    saved_at REAL NOT NULL
);
"""


def database_path(url: str | os.PathLike[str]) -> Path:
    """The file behind a study path or ``sqlite:///relative`` / ``sqlite:////absolute`` URL."""
    text = str(url)
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme != "sqlite":
            raise StorageError(f"study storage '{text}': only sqlite is supported (a path or sqlite:///path)")
        if not rest.startswith("/") or rest == "/":
            raise StorageError(f"study storage '{text}': write sqlite:///relative.db or sqlite:////abs/path.db")
        text = rest[1:]
    if not text:
        raise StorageError("study storage: empty path")
    return Path(text)


@dataclass(frozen=True)
class TrialRecord:
    """One row of the trials table."""

    number: int
    hash: str
    genotype: dict[str, Any]
    status: str
    score: float | None
    error: str | None
    wall_seconds: float | None
    sgd_steps: int | None
    images_seen: int | None
    train_flops: float | None
    eval_flops: float | None
    params: int | None
    metrics: dict[str, Any]
    #: measured objective values (``score``, ``params``, ``latency_ms``...; empty if none declared)
    objectives: dict[str, float]
    worker: str | None
    seed: int | None
    cached_from: int | None
    asked_at: float
    finished_at: float | None
    ask_event: int
    tell_event: int | None

    @property
    def flops(self) -> float:
        return (self.train_flops or 0.0) + (self.eval_flops or 0.0)

    @property
    def finished(self) -> bool:
        return self.status in ("ok", "failed", "cached", "infeasible")

    @property
    def violations(self) -> dict[str, str] | None:
        """The violated constraints of an infeasible trial (or of the one a cached trial copies)."""
        found = (self.metrics or {}).get("violations")
        return dict(found) if isinstance(found, dict) and found else None


class Study:
    """An open study database.

    ``create=True`` (a search) opens the study for writing and creates it if needed (a missing or
    empty file becomes a study). ``create=False`` (show, export) opens an existing study read-only
    (a ``mode=ro`` URI): nothing is ever written to it (SQLite may leave the empty ``-wal``/``-shm``
    files its readers share next to it; on a read-only mount it reads it as immutable). Either way a file that is not a gtn-search
    study, such as another program's SQLite database, is refused before anything is written.
    """

    def __init__(self, url: str | os.PathLike[str], create: bool = True, timeout: float = 10.0) -> None:
        self.path = database_path(url)
        self.read_only = not create
        if self.read_only and not self.path.exists():
            raise StorageError(f"study {self.path} does not exist; check the path (searches create it)")
        if self.path.is_dir():
            raise StorageError(f"study {self.path} is a folder, expected a SQLite file")
        if self.read_only and self.path.stat().st_size == 0:
            raise StorageError(f"study {self.path} is an empty file, not a gtn-search study; check the path")
        if not self.read_only:
            try:
                writable_folder(self.path.parent)
            except OSError as exc:
                raise StorageError(
                    f"study {self.path}: cannot create files in {exc.filename} ({exc.strerror or exc}); SQLite "
                    f"needs a writable folder for the study and its -wal/-shm files: choose a writable 'study' path"
                ) from None
        try:
            self.conn = self._connect(timeout)
            try:
                self._prepare()
            except BaseException:
                self.conn.close()
                raise
        except sqlite3.DatabaseError as exc:
            raise StorageError(_sqlite_message(self.path, exc)) from None
        except OSError as exc:
            raise StorageError(f"study {self.path}: cannot open: {exc.strerror or exc}") from None

    def _prepare(self) -> None:
        """Check the file is a study (nothing written yet); when writing: WAL mode, schema if new."""
        version = self._stored_schema_version()
        if not self.read_only:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            if version is None:
                self._create_schema()
            elif version < SCHEMA_VERSION:
                self._migrate(version)

    def _connect(self, timeout: float) -> sqlite3.Connection:
        if self.read_only:
            uri = f"{self.path.absolute().as_uri()}?mode=ro"
            if not os.access(self.path.parent, os.W_OK) or os.statvfs(self.path.parent).f_flag & os.ST_RDONLY:
                uri += "&immutable=1"  # a read-only mount: no writer can exist, and no -shm file can be made
            conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    def _stored_schema_version(self) -> int | None:
        """The study's schema version; None for an empty database (a new study when writing).

        Refuses, without writing, an empty database opened for reading, a database of another
        program (another application id, or tables without this schema's ``meta`` and ``trials``)
        and a schema newer than this gtn-search reads.
        """
        tables = {str(r[0]) for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        app_id = int(self.conn.execute("PRAGMA application_id").fetchone()[0])
        if not tables and app_id == 0:
            if self.read_only:
                raise StorageError(f"study {self.path} is an empty SQLite database, not a gtn-search study "
                                   f"(no search has written to it); check the path")
            return None
        version: str | None = None
        if app_id in (0, APPLICATION_ID) and {"meta", "trials"} <= tables:
            try:
                row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            except sqlite3.DatabaseError:
                row = None
            version = None if row is None else str(row[0])
        if version is None or not version.isdigit():
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise StorageError(
                f"study {self.path} is a SQLite database of another program (tables: {shown or 'none'}), not a "
                f"gtn-search study; it was left unchanged: choose another 'study' path"
            )
        if int(version) > SCHEMA_VERSION:
            raise StorageError(
                f"study {self.path} has schema version {version}, written by a newer gtn-search; this one "
                f"reads up to version {SCHEMA_VERSION}: upgrade gtn-search (the file was not changed)"
            )
        return int(version)

    def _create_schema(self) -> None:
        with self.transaction():
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    self.conn.execute(statement)
            self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('created_at', ?)", (str(time.time()),))

    def _migrate(self, version: int) -> None:
        """Bring an older study to :data:`SCHEMA_VERSION` in one transaction (nothing is lost)."""
        with self.transaction():
            if version < 2:  # rebuild the trials table: new status value and the objectives column
                columns = [str(r[1]) for r in self.conn.execute("PRAGMA table_info(trials)")]
                self.conn.execute("ALTER TABLE trials RENAME TO trials_v1")
                self.conn.execute("DROP INDEX IF EXISTS trials_hash")
                self.conn.execute("DROP INDEX IF EXISTS trials_tell_event")
                for statement in _SCHEMA.strip().split(";"):
                    if "trials" in statement:
                        self.conn.execute(statement)
                names = ", ".join(columns)
                self.conn.execute(f"INSERT INTO trials ({names}) SELECT {names} FROM trials_v1")
                self.conn.execute("DROP TABLE trials_v1")
            self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('migrated_from', ?)", (str(version),))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error); a locked database is a clear error."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StorageError(_sqlite_message(self.path, exc)) from None
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                raise StorageError(_sqlite_message(self.path, exc)) from None

    def close(self) -> None:
        self.conn.close()

    # -- metadata --------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- events ------------------------------------------------------------------------------------
    def next_event(self) -> int:
        row = self.conn.execute(
            "SELECT MAX(m) FROM (SELECT MAX(ask_event) AS m FROM trials UNION ALL SELECT MAX(tell_event) FROM trials)"
        ).fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def record_ask(self, number: int, arch_hash: str, genotype: dict[str, Any], seed: int, event: int) -> None:
        """A trial was asked (status 'running')."""
        with self.transaction():
            self.conn.execute(
                "INSERT INTO trials (number, hash, genotype, status, seed, asked_at, ask_event) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?)",
                (number, arch_hash, json.dumps(genotype, sort_keys=True), seed, time.time(), event),
            )

    def record_result(self, number: int, result: Any, event: int, worker: str | None = None,
                      cached_from: int | None = None, objectives: dict[str, float] | None = None) -> None:
        """Store an evaluation result (or a cache hit), its objective values and its tell event,
        in one transaction."""
        status = "cached" if cached_from is not None else result.status
        with self.transaction():
            cur = self.conn.execute(
                "UPDATE trials SET status=?, score=?, error=?, wall_seconds=?, sgd_steps=?, images_seen=?, "
                "train_flops=?, eval_flops=?, params=?, metrics=?, objectives=?, worker=?, cached_from=?, "
                "finished_at=?, tell_event=? WHERE number=? AND status='running'",
                (status, result.score, result.error, result.wall_seconds, result.sgd_steps, result.images_seen,
                 result.train_flops, result.eval_flops, result.params, json.dumps(result.metrics, sort_keys=True),
                 None if objectives is None else json.dumps(objectives, sort_keys=True),
                 worker, cached_from, time.time(), event, number),
            )
            if cur.rowcount != 1:
                raise StorageError(f"study {self.path}: trial {number} is not running; cannot record its result twice")

    def save_snapshot(self, event: int, state: dict[str, Any]) -> None:
        """Replace the strategy-state snapshot (taken after ``event``)."""
        with self.transaction():
            self.conn.execute("INSERT OR REPLACE INTO snapshots VALUES (1, ?, ?, ?)",
                              (event, json.dumps(state), time.time()))

    def snapshot(self) -> tuple[int, dict[str, Any]] | None:
        row = self.conn.execute("SELECT event, state FROM snapshots WHERE id = 1").fetchone()
        return None if row is None else (int(row["event"]), json.loads(row["state"]))

    # -- queries ----------------------------------------------------------------------------------
    def trials(self, where: str = "", params: tuple[Any, ...] = ()) -> list[TrialRecord]:
        rows = self.conn.execute(f"SELECT * FROM trials {where} ORDER BY number", params).fetchall()
        return [_record(r) for r in rows]

    def trial(self, number: int) -> TrialRecord | None:
        found = self.trials("WHERE number = ?", (number,))
        return found[0] if found else None

    def finished_with_hash(self, arch_hash: str) -> TrialRecord | None:
        """The first evaluated (ok or failed) or infeasible trial of a genotype, for the duplicate cache."""
        found = self.trials("WHERE hash = ? AND status IN ('ok', 'failed', 'infeasible')", (arch_hash,))
        return found[0] if found else None

    def best(self, k: int = 10) -> list[TrialRecord]:
        """The top-k evaluated trials by score (each genotype once)."""
        rows = self.conn.execute(
            "SELECT * FROM trials WHERE status = 'ok' ORDER BY score DESC, number ASC"
        ).fetchall()
        seen: set[str] = set()
        out = []
        for r in rows:
            if r["hash"] not in seen:
                seen.add(r["hash"])
                out.append(_record(r))
            if len(out) >= k:
                break
        return out

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, COUNT(*) FROM trials GROUP BY status").fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def totals(self) -> dict[str, float]:
        """Evaluated trials and the compute they used (cache hits cost nothing)."""
        row = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(wall_seconds), 0), COALESCE(SUM(train_flops + eval_flops), 0) "
            "FROM trials WHERE status IN ('ok', 'failed')"
        ).fetchone()
        return {"evaluated": int(row[0]), "seconds": float(row[1]), "flops": float(row[2])}

    def integrity_ok(self) -> bool:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _record(r: sqlite3.Row) -> TrialRecord:
    return TrialRecord(
        number=r["number"], hash=r["hash"], genotype=json.loads(r["genotype"]), status=r["status"],
        score=r["score"], error=r["error"], wall_seconds=r["wall_seconds"], sgd_steps=r["sgd_steps"],
        images_seen=r["images_seen"], train_flops=r["train_flops"], eval_flops=r["eval_flops"], params=r["params"],
        metrics=json.loads(r["metrics"]) if r["metrics"] else {},
        objectives=json.loads(r["objectives"]) if "objectives" in r.keys() and r["objectives"] else {},  # noqa: SIM118 (sqlite3.Row)
        worker=r["worker"], seed=r["seed"],
        cached_from=r["cached_from"], asked_at=r["asked_at"], finished_at=r["finished_at"],
        ask_event=r["ask_event"], tell_event=r["tell_event"],
    )


def _sqlite_message(path: Path, exc: Exception) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return f"study {path} is locked by another process (another search on the same study?); wait or stop it"
    if "not a database" in text or "malformed" in text or "disk image" in text:
        return f"study {path} is not a readable SQLite database ({text}); check the path or restore a backup"
    if "readonly" in text or "read-only" in text:
        return f"study {path} is read-only; choose a writable location"
    if "unable to open" in text:
        return (f"study {path}: SQLite cannot open it ({text}); the file and its folder must be readable, and "
                f"writable for a search; choose another 'study' path")
    return f"study {path}: SQLite error: {text}"
