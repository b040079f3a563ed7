"""A new SQLite database for a local Prefect server starts as a copy of one Prefect has migrated.

On a new database Prefect runs all its migrations when the server starts: about 7 of the 13-20 s
the first server takes on 2 cores, paid by the first ``agentctl ask`` or ``up`` of every machine.
agentctl ships that database, migrated by the exact Prefect it pins and empty, and copies it in
place of a missing one; Prefect finds it at its latest revision and migrates nothing. For another
Prefect version there is no copy, and Prefect migrates as usual.

``python -m agentctl.stack.prefect_db`` rebuilds the copy after a change of Prefect's version;
``tests/test_prefect_db.py`` compares it with a database migrated by the installed Prefect.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).parent


def migrated_copy(prefect_version: str | None = None) -> Path:
    """Where the migrated database of ``prefect_version`` (default: the installed one) ships."""
    return HERE / f"prefect-{prefect_version or version('prefect')}.db.gz"


def seed(database: Path) -> bool:
    """Put the shipped migrated database at ``database`` when there is none yet (0600); say whether."""
    source = migrated_copy()
    if database.exists() or not source.exists():
        return False
    partial = database.with_name(f".{database.name}.partial")
    with (
        gzip.open(source) as packed,
        os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out,
    ):
        shutil.copyfileobj(packed, out)
    partial.replace(database)  # whole or not at all: a half-copied database would not start
    return True


def migrate(database: Path) -> None:
    """Migrate a new database at ``database`` with the installed Prefect's own migrations."""
    code = (
        "import asyncio; from prefect.server.database import provide_database_interface as db;"
        "asyncio.run(db().create_db())"
    )
    env = {**os.environ, "PREFECT_HOME": str(database.parent), "DO_NOT_TRACK": "1"}
    env["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{database}"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, stdin=subprocess.DEVNULL)


def schema(database: Path) -> list[tuple[str, ...]]:
    """The database's schema (every table, index and trigger) and its migration revision, sorted.

    The lines of each statement are sorted too: Prefect's migrations, run twice, can order a
    table's constraints differently (they rebuild tables from a reflection).
    """
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        revision = db.execute("SELECT version_num FROM alembic_version").fetchall()
    return sorted([(*map(str, row[:-1]), _lines(row[-1])) for row in rows + revision])


def _lines(sql: str | None) -> str:
    return "\n".join(sorted(line.strip().rstrip(",") for line in str(sql).splitlines()))


def build() -> Path:
    """Migrate a new database with the installed Prefect, compact it, and write the shipped copy."""
    with tempfile.TemporaryDirectory() as work:
        database = Path(work) / "prefect.db"
        migrate(database)
        with sqlite3.connect(database) as db:
            db.execute("VACUUM")
        target = migrated_copy()
        with open(database, "rb") as plain, gzip.GzipFile(target, "wb", compresslevel=9, mtime=0) as packed:
            shutil.copyfileobj(plain, packed)
    return target


if __name__ == "__main__":
    print(build())
