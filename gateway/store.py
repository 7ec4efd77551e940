"""The SQLite database: connection settings, schema migrations, and the one
way to run a write transaction."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

DB_NAME = "gateway.sqlite3"
BUSY_TIMEOUT_MS = 10_000


class StoreError(Exception):
    """The database cannot be used as it is; the message says what to do."""


def _migrations() -> list[tuple[int, str, str]]:
    """Return (version, name, sql) for every file in gateway/migrations, in order."""
    found = []
    for entry in resources.files("gateway.migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"migration numbers must run 1, 2, 3...: found {versions}")
    return found


def connect(path: Path, *, migrate: bool = True) -> sqlite3.Connection:
    """Open the database with the settings money needs, and bring its schema up to date.

    The connection is in autocommit mode: every write goes through
    `transaction()`, which opens BEGIN IMMEDIATE and commits once.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise StoreError(f"{path}: cannot switch to WAL journal (got {mode})")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    _check_integrity(conn, path)
    if migrate:
        _migrate(conn, path)
    return conn


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a damaged database loudly instead of carrying on or replacing it."""
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as err:
        raise StoreError(
            f"{path} is not a readable SQLite database ({err}). It was left as it "
            f"is: copy it aside for recovery (sqlite3 {path} .recover) and start "
            f"with a restored backup."
        ) from None
    if result != "ok":
        raise StoreError(
            f"{path} failed its integrity check: {result}. It was left as it is: "
            f"copy it aside, run `sqlite3 {path} .recover`, and restore."
        )


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    migrations = _migrations()
    if current > len(migrations):
        raise StoreError(
            f"{path} has schema version {current}, newer than this prepaidgw "
            f"knows ({len(migrations)}): upgrade prepaidgw, do not downgrade it"
        )
    for version, name, sql in migrations[current:]:
        # executescript() would commit on its own; run the statements inside
        # one explicit transaction so a migration applies whole or not at all.
        with transaction(conn):
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
        log.info("schema_migrated", db=str(path), version=version, name=name)


def _statements(sql: str) -> Iterator[str]:
    buffer = ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
    if buffer.strip():
        raise StoreError(f"unterminated SQL statement in migration: {buffer[:60]!r}")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run a block as one write transaction: BEGIN IMMEDIATE, COMMIT or ROLLBACK."""
    if conn.in_transaction:
        raise StoreError("transactions do not nest: finish the open one first")
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def open_state(state_dir: Path) -> sqlite3.Connection:
    """Open the gateway database in its state directory."""
    return connect(state_dir / DB_NAME)
