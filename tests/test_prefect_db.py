"""The migrated database a new local Prefect server starts from: current, and only for a new database."""

from __future__ import annotations

import stat
from pathlib import Path

from agentctl.stack import prefect_db


def test_the_shipped_database_is_the_one_the_installed_prefect_migrates(tmp_path: Path) -> None:
    migrated = tmp_path / "migrated" / "prefect.db"
    migrated.parent.mkdir()
    prefect_db.migrate(migrated)
    seeded = tmp_path / "seeded.db"
    assert prefect_db.seed(seeded), "no migrated database ships for this Prefect: python -m agentctl.stack.prefect_db"
    assert prefect_db.schema(seeded) == prefect_db.schema(migrated), "run python -m agentctl.stack.prefect_db"


def test_a_database_that_exists_is_left_alone_and_a_new_one_is_the_users_alone(tmp_path: Path) -> None:
    existing = tmp_path / "existing.db"
    existing.write_bytes(b"runs of last week")
    assert not prefect_db.seed(existing) and existing.read_bytes() == b"runs of last week"
    new = tmp_path / "new.db"
    assert prefect_db.seed(new)
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    assert sorted(path.name for path in tmp_path.iterdir()) == ["existing.db", "new.db"]  # no partial copy left
