"""Downlink commands over a real mosquitto: signed top-ups applied once with a
result, duplicates, refusals of forged, expired, replayed and malformed
commands, and commands queued while the gateway was away."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import ledger
from gateway.clock import SystemClock
from gateway.config.cloud import Cloud
from gateway.money import Money
from gateway.sync.contract import Topics
from gateway.sync.service import SyncService
from simulators.cloud.cloud import ReferenceCloud, make_command, publish_command
from tests.sync.helpers import SITE, Broker, eventually, running

pytestmark = pytest.mark.broker

TOPUP = {"account_id": "flat1", "amount_minor": 2500, "currency": "EUR"}


def _service(cloud: Cloud, db: Path, changes: list[int]) -> SyncService:
    return SyncService(
        cloud,
        SITE,
        db,
        SystemClock(True),
        lambda: changes.append(1),
        first_backoff_s=0.1,
        max_backoff_s=0.5,
    )


def _refcloud(broker: Broker, tmp_path: Path) -> ReferenceCloud:
    return ReferenceCloud("127.0.0.1", broker.port, SITE, tmp_path / "cloud.sqlite3")


def _results(ref: ReferenceCloud) -> list[dict[str, Any]]:
    rows = ref.store.conn.execute(
        "SELECT r.body FROM results r JOIN uplink u ON u.id = r.message_id "
        "ORDER BY u.seq"
    ).fetchall()
    return [json.loads(r[0]) for r in rows]


def _id_of(envelope: bytes) -> str:
    return str(json.loads(json.loads(envelope)["command"])["command_id"])


def _ledger_size(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM ledger_entries").fetchone()[0])


async def _send(broker: Broker, envelope: bytes) -> None:
    await publish_command(
        "127.0.0.1", broker.port, Topics("prepaid/v1", SITE), envelope
    )


async def test_signed_topup_is_applied_once_and_its_result_comes_back(
    broker: Broker,
    cloud_config: Cloud,
    cloud_key: Ed25519PrivateKey,
    gateway_db: Path,
    conn: sqlite3.Connection,
    tmp_path: Path,
) -> None:
    changes: list[int] = []
    ref = _refcloud(broker, tmp_path)
    envelope = make_command(SITE, "topup", TOPUP, cloud_key)
    async with running(ref), running(_service(cloud_config, gateway_db, changes)):
        await _send(broker, envelope)
        await eventually(lambda: ref.store.results_for(_id_of(envelope)))
        await eventually(lambda: ref.store.balances().get("flat1") == 2500)

    [result] = ref.store.results_for(_id_of(envelope))
    assert result["status"] == "applied"
    assert result["result"]["balance_minor"] == 2500
    assert ledger.balance(conn, "flat1") == Money(2500, "EUR")
    assert changes == [1]
    assert ref.status == "offline"  # said on a clean shutdown


async def test_same_command_three_times_is_applied_once(
    broker: Broker,
    cloud_config: Cloud,
    cloud_key: Ed25519PrivateKey,
    gateway_db: Path,
    conn: sqlite3.Connection,
    tmp_path: Path,
) -> None:
    ref = _refcloud(broker, tmp_path)
    envelope = make_command(SITE, "topup", TOPUP, cloud_key)
    async with running(ref), running(_service(cloud_config, gateway_db, [])):
        for _ in range(3):
            await _send(broker, envelope)
        await eventually(lambda: len(ref.store.results_for(_id_of(envelope))) == 3)

    statuses = [r["status"] for r in ref.store.results_for(_id_of(envelope))]
    assert statuses == ["applied", "duplicate", "duplicate"]
    later = ref.store.results_for(_id_of(envelope))[1]
    assert later["first_status"] == "applied"
    assert later["result"]["balance_minor"] == 2500
    assert ledger.balance(conn, "flat1") == Money(2500, "EUR")
    assert _ledger_size(conn) == 1


def _tamper(envelope: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    outer = json.loads(envelope)
    inner = json.loads(outer["command"])
    change(inner)
    outer["command"] = json.dumps(inner)
    return json.dumps(outer).encode()


async def test_unsigned_forged_expired_and_replayed_commands_are_refused(
    broker: Broker,
    cloud_config: Cloud,
    cloud_key: Ed25519PrivateKey,
    gateway_db: Path,
    conn: sqlite3.Connection,
    tmp_path: Path,
) -> None:
    ref = _refcloud(broker, tmp_path)
    stranger = Ed25519PrivateKey.generate()
    genuine = make_command(SITE, "topup", TOPUP, cloud_key, command_id="cmd-genuine-1")
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    cases = {
        "unsigned": make_command(SITE, "topup", TOPUP, None, command_id="cmd-unsigned"),
        "forged": make_command(SITE, "topup", TOPUP, stranger, command_id="cmd-forged"),
        "expired": make_command(
            SITE,
            "topup",
            TOPUP,
            cloud_key,
            command_id="cmd-expired",
            issued_at=long_ago,
        ),
        # A captured command re-sent under a new id: the old signature no
        # longer covers it.
        "replayed_new_id": _tamper(
            genuine, lambda c: c.update(command_id="cmd-replay")
        ),
        # The amount raised in a captured command.
        "altered": _tamper(genuine, lambda c: c["args"].update(amount_minor=999999)),
        "other_site": make_command(
            "elsewhere", "topup", TOPUP, cloud_key, command_id="cmd-elsewhere"
        ),
    }
    async with running(ref), running(_service(cloud_config, gateway_db, [])):
        for envelope in cases.values():
            await _send(broker, envelope)
        await eventually(lambda: len(_results(ref)) == len(cases))

        reasons = {r["command_id"]: (r["status"], r["reason"]) for r in _results(ref)}
        assert reasons["cmd-unsigned"][0] == "rejected"
        assert "unsigned" in reasons["cmd-unsigned"][1]
        assert reasons["cmd-forged"] == ("rejected", reasons["cmd-forged"][1])
        assert "signature" in reasons["cmd-forged"][1]
        assert reasons["cmd-expired"][0] == "expired"
        assert "signature" in reasons["cmd-replay"][1]
        assert "signature" in reasons["cmd-genuine-1"][1]  # the altered copy
        assert "site" in reasons["cmd-elsewhere"][1]
        assert _ledger_size(conn) == 0
        assert ledger.balance(conn, "flat1") == Money(0, "EUR")

        # The genuine command still applies after forgeries claimed its id,
        # and a captured copy of it replayed later changes nothing.
        await _send(broker, genuine)
        await _send(broker, genuine)
        await eventually(lambda: len(ref.store.results_for("cmd-genuine-1")) == 3)
    statuses = [r["status"] for r in ref.store.results_for("cmd-genuine-1")]
    assert statuses == ["rejected", "applied", "duplicate"]
    assert ledger.balance(conn, "flat1") == Money(2500, "EUR")


async def test_bad_payloads_are_refused_and_the_service_keeps_running(
    broker: Broker,
    cloud_config: Cloud,
    cloud_key: Ed25519PrivateKey,
    gateway_db: Path,
    conn: sqlite3.Connection,
    tmp_path: Path,
) -> None:
    ref = _refcloud(broker, tmp_path)
    bad = [
        b"{not json",
        json.dumps({"v": 1, "command": 42}).encode(),
        b'{"v":1,"command":"' + b"x" * 20_000 + b'","signature":null}',
        make_command(SITE, "self_destruct", {}, cloud_key, command_id="cmd-unknown"),
        make_command(
            SITE,
            "topup",
            {"account_id": "flat1", "amount_minor": -5, "currency": "EUR"},
            cloud_key,
            command_id="cmd-negative",
        ),
        make_command(
            SITE,
            "topup",
            dict(TOPUP, account_id="nobody"),
            cloud_key,
            command_id="cmd-nobody",
        ),
    ]
    good = make_command(SITE, "topup", TOPUP, cloud_key)
    async with running(ref), running(_service(cloud_config, gateway_db, [])):
        for payload in bad:
            await _send(broker, payload)
        await eventually(lambda: len(_results(ref)) == len(bad))
        await _send(broker, good)
        await eventually(lambda: ref.store.results_for(_id_of(good)))

    reasons = [r["reason"] for r in _results(ref)[: len(bad)]]
    assert "not valid JSON" in reasons[0]
    assert "schema" in reasons[1]
    assert "20" in reasons[2] and "limit" in reasons[2]
    assert "unknown command kind 'self_destruct'" in reasons[3]
    assert "amount_minor" in reasons[4]
    assert "nobody" in reasons[5]
    assert all(r["status"] == "rejected" for r in _results(ref)[: len(bad)])
    assert ref.store.results_for(_id_of(good))[0]["status"] == "applied"
    assert ledger.balance(conn, "flat1") == Money(2500, "EUR")


async def test_command_sent_while_gateway_was_away_is_applied_on_reconnect(
    broker: Broker,
    cloud_config: Cloud,
    cloud_key: Ed25519PrivateKey,
    gateway_db: Path,
    conn: sqlite3.Connection,
    tmp_path: Path,
) -> None:
    ref = _refcloud(broker, tmp_path)
    envelope = make_command(SITE, "topup", TOPUP, cloud_key)
    async with running(ref):
        async with running(_service(cloud_config, gateway_db, [])):
            pass  # the first connection creates the persistent session
        await eventually(lambda: ref.status == "offline")
        await _send(broker, envelope)
        assert ledger.balance(conn, "flat1") == Money(0, "EUR")

        async with running(_service(cloud_config, gateway_db, [])):
            await eventually(lambda: ref.store.results_for(_id_of(envelope)))
            await eventually(lambda: ref.status == "online")

    assert ref.store.results_for(_id_of(envelope))[0]["status"] == "applied"
    assert ledger.balance(conn, "flat1") == Money(2500, "EUR")


async def test_other_commands_store_what_they_set(
    broker: Broker,
    cloud_config: Cloud,
    cloud_key: Ed25519PrivateKey,
    gateway_db: Path,
    conn: sqlite3.Connection,
    tmp_path: Path,
) -> None:
    ref = _refcloud(broker, tmp_path)
    sent = [
        make_command(
            SITE,
            "account_upsert",
            {
                "account_id": "flat2",
                "name": "Flat 2",
                "currency": "EUR",
                "credit_line_minor": 300,
            },
            cloud_key,
        ),
        make_command(
            SITE,
            "account_upsert",
            {"account_id": "flat1", "low_balance_minor": 123},
            cloud_key,
        ),
        make_command(
            SITE,
            "tariff_set",
            {
                "tariff_id": "standard",
                "effective_at": "2026-04-01T00:00:00+02:00",
                "prices": {"electricity": {"price": "0.40", "per": "kWh"}},
            },
            cloud_key,
        ),
        make_command(
            SITE,
            "unit_override",
            {"unit_id": "u-elec", "mode": "off", "reason": "meter swap"},
            cloud_key,
        ),
        make_command(
            SITE,
            "display_message",
            {"account_id": "flat1", "text": "Water off Tuesday 9-11"},
            cloud_key,
        ),
        make_command(
            SITE,
            "adjustment",
            {
                "account_id": "flat2",
                "amount_minor": -150,
                "currency": "EUR",
                "reason": "meter fee",
            },
            cloud_key,
        ),
    ]
    async with running(ref), running(_service(cloud_config, gateway_db, [])):
        for envelope in sent:
            await _send(broker, envelope)
        await eventually(lambda: len(_results(ref)) == len(sent))
        entry = ledger.entries(conn, "flat2")[0]
        reverse = make_command(
            SITE,
            "reversal",
            {"account_id": "flat2", "entry_id": entry.id, "reason": "fee waived"},
            cloud_key,
        )
        await _send(broker, reverse)
        await eventually(lambda: ref.store.results_for(_id_of(reverse)))
        await eventually(lambda: ref.store.balances().get("flat2") == 0)

    assert [r["status"] for r in _results(ref)] == ["applied"] * (len(sent) + 1)
    row = conn.execute("SELECT * FROM accounts WHERE id = 'flat2'").fetchone()
    assert (row["name"], row["credit_line_minor"]) == ("Flat 2", 300)
    low = conn.execute("SELECT low_balance_minor FROM accounts WHERE id = 'flat1'")
    assert low.fetchone()[0] == 123
    tariff = conn.execute("SELECT * FROM tariff_schedule").fetchone()
    assert tariff["effective_at"] == "2026-03-31T22:00:00.000+00:00"
    assert conn.execute("SELECT mode FROM unit_overrides").fetchone()[0] == "off"
    assert (
        conn.execute("SELECT text FROM display_messages")
        .fetchone()[0]
        .startswith("Water")
    )
    assert ledger.balance(conn, "flat2") == Money(0, "EUR")
