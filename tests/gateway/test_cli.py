"""The operator CLI as an administrator uses it: real processes, a real database."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gateway import store
from gateway.billing import process_reading
from gateway.clock import Stamp
from gateway.config import load_config
from gateway.model import Reading
from gateway.site import SitePlan
from tests.conftest import SITE_YAML


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def site_file(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(SITE_YAML)
    return path


def test_topup_with_one_reference_twice_is_applied_once(site_file: Path) -> None:
    first = cli("topup", "flat1", "20.00", "--ref", "R-100", "--config", str(site_file))
    second = cli(
        "topup", "flat1", "20.00", "--ref", "R-100", "--config", str(site_file)
    )
    assert first.returncode == 0, first.stderr
    assert "applied: 20.00 EUR to flat1, balance now 20.00 EUR" in first.stdout
    assert second.returncode == 0
    assert second.stdout.startswith("duplicate: reference R-100 was already applied")
    assert "Balance 20.00 EUR" in second.stdout

    db = sqlite3.connect(site_file.parent / "state" / "gateway.sqlite3")
    assert db.execute(
        "SELECT COUNT(*), SUM(amount_minor) FROM ledger_entries WHERE kind = 'topup'"
    ).fetchone() == (1, 2000)


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("12.345", "more than 2 decimal places"),
        ("0.00", "more than zero"),
        ("ten", "is not an amount"),
    ],
)
def test_bad_topup_amounts_are_refused(
    site_file: Path, amount: str, message: str
) -> None:
    run = cli("topup", "flat1", amount, "--ref", "R-1", "--config", str(site_file))
    assert run.returncode == 2
    assert message in run.stderr


def test_topup_for_an_unknown_account_names_it(site_file: Path) -> None:
    run = cli("topup", "flat9", "5", "--ref", "R-2", "--config", str(site_file))
    assert run.returncode == 2
    assert "no account 'flat9'" in run.stderr


def test_status_show_and_history_report_what_was_billed(site_file: Path) -> None:
    config = load_config(site_file)
    conn = store.connect(config.state_dir / "gateway.sqlite3")
    site = SitePlan(config)
    cli("topup", "flat1", "30.00", "--ref", "R-3", "--config", str(site_file))
    now = datetime.now(UTC)
    for hour, kwh in ((-3, "100"), (-2, "110"), (-1, "112.5")):
        stamp = Stamp(now + timedelta(hours=hour), True)
        process_reading(
            conn, site, Reading("m-elec", Decimal(kwh), "kWh", stamp, "test")
        )
    conn.close()

    status = cli("status", "--config", str(site_file))
    assert status.returncode == 0, status.stderr
    # 12.5 kWh x 0.3412 = 4.265, rounded half to even once: 4.26.
    assert "25.74 EUR" in status.stdout
    assert "112.5 kWh" in status.stdout

    show = cli("accounts", "show", "flat1", "--config", str(site_file))
    assert "balance      25.74 EUR" in show.stdout
    assert "10 kWh electricity" in show.stdout
    assert "2.5 kWh electricity" in show.stdout
    history = cli("history", "flat1", "--days", "2", "--config", str(site_file))
    assert history.returncode == 0, history.stderr
    assert "12.5 kWh" in history.stdout


@pytest.mark.parametrize(
    ("amount", "message"),
    [("1e3", "write it like 12.50"), ("99999999999999999999", "more than any real")],
)
def test_odd_amounts_get_an_error_not_a_traceback(
    site_file: Path, amount: str, message: str
) -> None:
    run = cli("topup", "flat1", amount, "--ref", "R-9", "--config", str(site_file))
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def test_a_reference_reused_for_another_amount_says_what_it_was(
    site_file: Path,
) -> None:
    cli("topup", "flat1", "20.00", "--ref", "R-5", "--config", str(site_file))
    run = cli("topup", "flat1", "25.00", "--ref", "R-5", "--config", str(site_file))
    assert run.returncode == 2
    assert "reference R-5 was already used" in run.stderr
    assert "20.00 EUR to flat1" in run.stderr


def test_looking_commands_do_not_create_a_database(site_file: Path) -> None:
    run = cli("status", "--config", str(site_file))
    assert run.returncode == 2
    assert "no database" in run.stderr
    assert not (site_file.parent / "state").exists()


def test_a_mistaken_topup_is_taken_back_with_a_signed_adjustment(
    site_file: Path,
) -> None:
    cli("topup", "flat1", "1000.00", "--ref", "R-typo", "--config", str(site_file))
    args = (
        "adjust",
        "flat1",
        "--by",
        "-990.00",
        "--ref",
        "fix-1",
        "--reason",
        "typo in receipt R-typo",
        "--config",
        str(site_file),
    )
    first = cli(*args)
    again = cli(*args)
    assert first.returncode == 0, first.stderr
    assert "adjusted flat1 by -990.00 EUR, balance now 10.00 EUR" in first.stdout
    assert again.stdout.startswith("duplicate")
    db = sqlite3.connect(site_file.parent / "state" / "gateway.sqlite3")
    assert db.execute("SELECT SUM(amount_minor) FROM ledger_entries").fetchone() == (
        1000,
    )
