"""Shared fixtures: real SQLite files in a temporary state directory, and a
small site configuration."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from gateway import log, store
from gateway.clock import ManualClock
from gateway.config import Config, parse_config

SITE_YAML = """
site: {id: test-house, currency: EUR, timezone: Europe/Berlin}
state_dir: state
buses:
  - {id: mbus1, kind: mbus, port: /dev/null}
  - {id: rs485, kind: modbus, port: /dev/null}
meters:
  - {id: m-elec, bus: mbus1, address: 1, medium: electricity, account: flat1}
  - {id: m-water, bus: mbus1, address: 2, medium: water, account: flat1}
units:
  - {id: u-elec, bus: rs485, address: 11, kind: contactor, meters: [m-elec]}
accounts:
  - {id: flat1, name: Flat 1, credit_line: "5.00", low_balance: "10.00"}
tariffs:
  - id: standard
    prices:
      electricity: {price: "0.3412", per: kWh, standing_charge_per_day: "0.25"}
      water: {price: "4.2", per: m3}
"""


@pytest.fixture(autouse=True, scope="session")
def _logging() -> None:
    log.configure(json=True, level="DEBUG", cache=False)


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    structlog.contextvars.clear_contextvars()
    yield


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return parse_config(SITE_YAML, tmp_path / "site.yaml")


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = store.connect(tmp_path / "gateway.sqlite3")
    yield c
    c.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 1, 8, 0, tzinfo=UTC))
