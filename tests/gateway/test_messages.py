"""Display messages: addressing, which one a unit shows, read receipts stored
once and queued for the cloud, the round trip through the real Modbus driver
and the simulated unit, and the `messages` commands."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from drivers.modbus.unit_bus import ModbusUnitBus
from gateway import accounts, messages
from gateway.clock import ManualClock
from gateway.config import Config
from gateway.model import UnitCommand
from gateway.site import SitePlan
from gateway.store import transaction
from simulators.dispensing_unit import DispensingUnitSimulator
from tests.conftest import SITE_YAML


@pytest.fixture
def site(conn: sqlite3.Connection, config: Config, clock: ManualClock) -> SitePlan:
    plan = SitePlan(config)
    with transaction(conn):
        accounts.sync_from_config(conn, plan, clock.now())
    messages.chore(conn, plan, clock.now())
    return plan


@pytest.mark.parametrize(
    ("address", "shown_on_u_elec"),
    [
        ({"unit_id": "u-elec"}, True),
        ({"unit_id": "u-other"}, False),
        ({"account_id": "flat1"}, True),
        ({}, True),  # all units
    ],
)
def test_a_unit_shows_what_is_addressed_to_it(
    conn: sqlite3.Connection,
    site: SitePlan,
    clock: ManualClock,
    address: dict[str, str],
    shown_on_u_elec: bool,
) -> None:
    message_id = messages.send(conn, "Water off Tuesday 9-12", clock.now(), **address)
    assert message_id >= 256, "ids below 256 are the Modbus unit's built-in texts"
    pending = messages.pending_for_unit(conn, "u-elec", clock.now())
    assert pending == (message_id if shown_on_u_elec else None)


def test_oldest_unread_first_then_the_next_and_expiry(
    conn: sqlite3.Connection, site: SitePlan, clock: ManualClock
) -> None:
    until = clock.now().at + timedelta(hours=1)
    first = messages.send(conn, "first", clock.now(), account_id="flat1", until=until)
    second = messages.send(conn, "second", clock.now())
    assert messages.pending_for_unit(conn, "u-elec", clock.now()) == first
    clock.advance(timedelta(hours=2))  # the first one expired unread
    assert messages.pending_for_unit(conn, "u-elec", clock.now()) == second
    assert messages.record_receipt(conn, "u-elec", second, clock.now().at, clock.now())
    assert messages.pending_for_unit(conn, "u-elec", clock.now()) is None


def test_a_receipt_is_stored_and_queued_once(
    conn: sqlite3.Connection, site: SitePlan, clock: ManualClock
) -> None:
    message_id = messages.send(conn, "hello", clock.now(), unit_id="u-elec")
    read_at = clock.now().at
    assert messages.record_receipt(conn, "u-elec", message_id, read_at, clock.now())
    # Units repeat their receipt on every state read.
    assert not messages.record_receipt(conn, "u-elec", message_id, read_at, clock.now())
    assert not messages.record_receipt(conn, "u-elec", 0, read_at, clock.now())
    with pytest.raises(messages.MessageError, match="never sent"):
        messages.record_receipt(conn, "u-elec", 999, read_at, clock.now())
    rows = conn.execute(
        "SELECT payload FROM outbox WHERE kind = 'message_receipt'"
    ).fetchall()
    assert [json.loads(r[0])["message_id"] for r in rows] == [message_id]
    [listed] = messages.listing(conn)
    assert [(r.unit_id, r.read_at) for r in listed.receipts] == [
        ("u-elec", clock.now().iso())
    ]


@pytest.mark.parametrize(
    ("text", "address", "error"),
    [
        ("", {}, "empty"),
        ("x" * 161, {}, "at most 160"),
        ("hi", {"unit_id": "u-elec", "account_id": "flat1"}, "not both"),
        ("hi", {"account_id": "flat9"}, "no account"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(
    conn: sqlite3.Connection,
    site: SitePlan,
    clock: ManualClock,
    text: str,
    address: dict[str, str],
    error: str,
) -> None:
    with pytest.raises(messages.MessageError, match=error):
        messages.send(conn, text, clock.now(), **address)


@pytest.fixture
def sim() -> Iterator[DispensingUnitSimulator]:
    with DispensingUnitSimulator([11]) as simulator:
        yield simulator


@pytest.fixture
async def bus(
    sim: DispensingUnitSimulator, clock: ManualClock
) -> AsyncIterator[ModbusUnitBus]:
    # ptys refuse parity on this machine; real lines keep the default "E".
    unit_bus = ModbusUnitBus(
        sim.port, parity="N", timeout_s=0.2, retries=1, watchdog_s=60, clock=clock
    )
    await unit_bus.open()
    yield unit_bus
    await unit_bus.close()


async def test_message_and_read_receipt_round_trip_over_modbus(
    conn: sqlite3.Connection,
    site: SitePlan,
    clock: ManualClock,
    sim: DispensingUnitSimulator,
    bus: ModbusUnitBus,
) -> None:
    message_id = messages.send(conn, "Meter check Friday", clock.now())
    pending = messages.pending_for_unit(conn, "u-elec", clock.now())
    assert pending == message_id

    # The actuator sends the id with the unit's command; the unit shows it.
    state = await bus.apply(
        11, "u-elec", UnitCommand("u-elec", supply_on=True, message_id=pending)
    )
    assert sim.display_message(11) == message_id
    assert state.extra["message_read"] == 0

    # The resident presses the confirm key; the next state read carries it.
    clock.advance(timedelta(minutes=3))
    assert sim.read_message(11) == message_id
    state = await bus.read_state(11, "u-elec")
    read = state.extra["message_read"]
    assert isinstance(read, int) and read == message_id
    assert messages.record_receipt(conn, "u-elec", read, state.stamp.at, clock.now())

    assert messages.pending_for_unit(conn, "u-elec", clock.now()) is None
    [listed] = messages.listing(conn)
    assert [(r.unit_id, r.read_at) for r in listed.receipts] == [
        ("u-elec", state.stamp.iso())
    ]
    queued = conn.execute(
        "SELECT payload FROM outbox WHERE kind = 'message_receipt'"
    ).fetchone()
    assert json.loads(queued[0]) == {
        "message_id": message_id,
        "unit_id": "u-elec",
        "read_at": state.stamp.iso(),
        "clock_synced": True,
    }


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_messages_commands_send_and_list(tmp_path: Path) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text(SITE_YAML)
    conf = ("--config", str(site_file))
    sent = cli("messages", "send", "--all", "Lift out of order", "--ref", "M1", *conf)
    assert sent.returncode == 0, sent.stderr
    assert "message 256 queued" in sent.stdout
    again = cli("messages", "send", "--all", "Lift out of order", "--ref", "M1", *conf)
    assert "duplicate: message 256" in again.stdout, "one reference, one message"
    both = cli("messages", "send", "--unit", "u-elec", "--all", "x", *conf)
    assert both.returncode == 2 and "exactly one of" in both.stderr

    listed = cli("messages", "--format", "json", *conf)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["messages"]
    assert [(r["id"], r["audience"], r["text"], r["read"]) for r in rows] == [
        (256, "all units", "Lift out of order", "-")
    ]


def test_a_message_that_would_never_show_is_refused_and_a_resend_is_a_duplicate(
    tmp_path: Path,
) -> None:
    from tests.conftest import SITE_YAML

    site = tmp_path / "site.yaml"
    site.write_text(SITE_YAML)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway",
                "messages",
                "send",
                *args,
                "--config",
                str(site),
            ],
            capture_output=True,
            text=True,
            check=False,
        )

    past = cli("Water off Monday", "--all", "--until", "2020-01-01T00:00+00:00")
    assert past.returncode == 2 and "already past" in past.stderr
    first = cli("Water off Monday", "--all", "--ref", "notice-7")
    again = cli("Water off Monday", "--all", "--ref", "notice-7")
    assert first.returncode == 0 and "queued" in first.stdout
    assert again.stdout.startswith("duplicate: message")
