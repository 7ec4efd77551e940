"""`prepaidgw outbox status` and `prepaidgw commands list` on a real database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import typer
from typer.testing import CliRunner

from gateway import outbox
from gateway.cli import cloud
from gateway.clock import ManualClock
from gateway.store import transaction
from tests.conftest import SITE_YAML


def _app() -> typer.Typer:
    app = typer.Typer()
    cloud.register(app)
    return app


def test_outbox_status_counts_what_waits_by_kind(
    tmp_path: Path, clock: ManualClock
) -> None:
    from gateway import store

    yaml = tmp_path / "site.yaml"
    yaml.write_text(SITE_YAML.replace("state_dir: state", f"state_dir: {tmp_path}"))
    conn: sqlite3.Connection = store.connect(tmp_path / store.DB_NAME)
    with transaction(conn):
        for i in range(3):
            outbox.enqueue(conn, "reading", {"i": i}, clock.now())
    conn.close()

    result = CliRunner().invoke(_app(), ["outbox", "status", "--config", str(yaml)])
    assert result.exit_code == 0, result.output
    assert "3 messages" in result.output
    assert "reading" in result.output

    listed = CliRunner().invoke(_app(), ["commands", "list", "--config", str(yaml)])
    assert listed.exit_code == 0, listed.output


def test_outbox_status_without_a_database_says_what_to_check(tmp_path: Path) -> None:
    yaml = tmp_path / "site.yaml"
    yaml.write_text(SITE_YAML.replace("state_dir: state", f"state_dir: {tmp_path}/x"))
    result = CliRunner().invoke(_app(), ["outbox", "status", "--config", str(yaml)])
    assert result.exit_code == 2
    assert "no database" in result.output
