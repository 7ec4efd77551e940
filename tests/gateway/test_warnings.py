"""Warnings reach residents through apprise: a local HTTP server on 127.0.0.1
is the target (never the internet); the message arrives once, and no secret
of the apprise URL appears in any log line."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway import accounts, housekeeping, ledger, notify, store
from gateway.billing import process_reading
from gateway.clock import ManualClock
from gateway.config import parse_config
from gateway.model import Reading
from gateway.money import Money
from gateway.site import SitePlan
from gateway.store import transaction
from gateway.warnings import days_left

SECRET = "Pa55-w0rd-x9"

SITE = """
site: {{id: warn-house, currency: EUR, timezone: Europe/Berlin}}
state_dir: state
buses:
  - {{id: mbus1, kind: mbus, port: /dev/null}}
meters:
  - {{id: m-elec, bus: mbus1, address: 1, medium: electricity, account: flat1}}
accounts:
  - id: flat1
    name: Flat 1
    contact: ["json://alice:{secret}@127.0.0.1:{port}/hook"]
    credit:
      warnings: {{remaining_below: ["5.00"], channels: [display, cloud, contact]}}
tariffs:
  - id: standard
    prices:
      electricity: {{price: "0.50", per: kWh}}
credit:
  notify: {{timeout_s: 3}}
"""


class Inbox:
    """A local HTTP endpoint that records what apprise posts to it."""

    def __init__(self, status: int = 200) -> None:
        self.received: list[dict[str, object]] = []
        self.status = status
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                inbox.received.append(json.loads(self.rfile.read(length)))
                self.send_response(inbox.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    yield box
    box.close()


class Captured(logging.Handler):
    """Every log line, as it would be written, from every logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.msg} {record.getMessage()}")


@pytest.fixture
def captured() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger()
    root.addHandler(handler)
    levels = {n: logging.getLogger(n).level for n in ("apprise", "urllib3")}
    # Let the libraries talk as much as they can: the test is that even
    # their debug lines carry no secret.
    logging.getLogger("apprise").setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _house(
    tmp_path: Path, port: int
) -> tuple[sqlite3.Connection, SitePlan, ManualClock]:
    config = parse_config(SITE.format(secret=SECRET, port=port), tmp_path / "site.yaml")
    site = SitePlan(config)
    conn = store.connect(tmp_path / "g.sqlite3")
    clock = ManualClock(datetime(2026, 11, 4, 9, 0, tzinfo=UTC))
    with transaction(conn):
        accounts.sync_from_config(conn, site, clock.now())
        ledger.post(
            conn,
            ledger.NewEntry(
                "topup:t:1",
                "flat1",
                ledger.EntryKind.TOPUP,
                Money.parse("20.00", "EUR"),
                "test",
                clock.now(),
            ),
        )
        accounts.evaluate(conn, "flat1", clock.now())
    return conn, site, clock


def _read(
    conn: sqlite3.Connection, site: SitePlan, clock: ManualClock, kwh: str
) -> None:
    clock.advance(timedelta(hours=1))
    process_reading(
        conn, site, Reading("m-elec", Decimal(kwh), "kWh", clock.now(), "test")
    )


async def test_warning_reaches_the_resident_once_and_no_secret_is_logged(
    tmp_path: Path, inbox: Inbox, captured: Captured
) -> None:
    conn, site, clock = _house(tmp_path, inbox.port)
    _read(conn, site, clock, "0")
    _read(conn, site, clock, "31")  # 15.50 used: 4.50 left, below 5.00
    _read(conn, site, clock, "32")  # 4.00 left: still below, no repeat

    first = await notify.deliver(conn, site, clock.now())
    again = await notify.deliver(conn, site, clock.now())

    assert [d.sent for d in first] == [True]
    assert again == []
    assert len(inbox.received) == 1
    message = inbox.received[0]
    assert message["title"] == "Prepaid credit warning"
    assert message["message"] == "Flat 1: 4.50 EUR of credit left (warning at 5.00 EUR)"
    row = conn.execute("SELECT sent_at, attempts FROM notifications").fetchone()
    assert row["sent_at"] is not None and row["attempts"] == 1

    text = "\n".join(captured.lines)
    assert "notification_sent" in text
    assert SECRET not in text


async def test_failed_delivery_is_retried_then_given_up_without_leaking(
    tmp_path: Path, captured: Captured
) -> None:
    broken = Inbox(status=500)
    try:
        conn, site, clock = _house(tmp_path, broken.port)
        _read(conn, site, clock, "0")
        _read(conn, site, clock, "31")
        for _ in range(notify.MAX_ATTEMPTS):
            await notify.deliver(conn, site, clock.now())
        assert await notify.deliver(conn, site, clock.now()) == []
    finally:
        broken.close()
    assert len(broken.received) == notify.MAX_ATTEMPTS
    row = conn.execute("SELECT * FROM notifications").fetchone()
    assert row["gave_up_at"] is not None and row["sent_at"] is None
    text = "\n".join(captured.lines)
    assert "notification_failed" in text
    assert SECRET not in text and SECRET not in (row["last_error"] or "")


async def test_notification_chore_sends_in_the_background(
    tmp_path: Path, inbox: Inbox
) -> None:
    conn, site, clock = _house(tmp_path, inbox.port)
    _read(conn, site, clock, "0")
    _read(conn, site, clock, "31")
    chores = {c.name: c for c in housekeeping.CHORES}
    # The chore returns at once; the loop stays free while apprise works.
    assert chores["notifications"].run(conn, site, clock.now()) is False
    for _ in range(200):
        if inbox.received:
            break
        await asyncio.sleep(0.02)
    assert len(inbox.received) == 1


def test_redact_masks_passwords_and_tokens() -> None:
    url = "tgram://123456789:AAHsecrettoken/987654"
    notify.remember_secrets([url])
    line = notify.redact(
        f"POST https://api.telegram.org/bot123456789:AAHsecrettoken/x {url}"
    )
    assert "AAHsecrettoken" not in line
    assert notify.redact("json://bob:pw@h/", []) == "json://****@h/"


DAYS = [
    # remaining, use a day, forecast days left
    ("10.00", "2.00", Decimal("5.0")),
    ("1.00", "3.00", Decimal("0.3")),
    ("-1.00", "2.00", Decimal(0)),
    ("10.00", "0.00", None),
    ("10.00", None, None),
]


@pytest.mark.parametrize(("remaining", "per_day", "expected"), DAYS)
def test_days_left(
    remaining: str, per_day: str | None, expected: Decimal | None
) -> None:
    daily = None if per_day is None else Money.parse(per_day, "EUR")
    assert days_left(Money.parse(remaining, "EUR"), daily) == expected
