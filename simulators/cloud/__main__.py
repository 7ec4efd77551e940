"""`python -m simulators.cloud ...`: run the reference cloud, send signed
commands to a site, and print the reconciliation report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.sync.contract import Topics
from gateway.sync.signing import private_key_b64, private_key_from_b64, public_key_b64
from simulators.cloud.cloud import ReferenceCloud, make_command, publish_command
from simulators.cloud.reconcile import reconcile
from simulators.cloud.store import CloudStore

KEY_ENV = "PREPAID_CLOUD_KEY"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulators.cloud", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--site", default="demo-house")
    p.add_argument("--root", default="prepaid/v1", help="topic root")
    p.add_argument("--db", type=Path, default=Path("cloud.sqlite3"))
    p.add_argument("--key", help=f"private key (base64); default ${KEY_ENV}")
    p.add_argument("--unsigned", action="store_true", help="send without signature")
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds to wait for the command's result (needs `serve`)",
    )
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("keygen", help="print a new key pair")
    sub.add_parser("serve", help="store and acknowledge the site's uplink")
    t = sub.add_parser("topup", help="credit an account")
    t.add_argument("account")
    t.add_argument("amount_minor", type=int)
    t.add_argument("--currency", default="EUR")
    t.add_argument("--ref")
    t.add_argument("--id", dest="command_id")
    a = sub.add_parser("adjust", help="correct an account by a signed amount")
    a.add_argument("account")
    a.add_argument("amount_minor", type=int)
    a.add_argument("reason")
    a.add_argument("--currency", default="EUR")
    tr = sub.add_parser("tariff", help="schedule a tariff price")
    tr.add_argument("tariff_id")
    tr.add_argument("medium")
    tr.add_argument("price")
    tr.add_argument("per")
    tr.add_argument("--standing", default="0")
    tr.add_argument("--effective", help="ISO time; default now")
    m = sub.add_parser("message", help="show a text on an account's units")
    m.add_argument("account")
    m.add_argument("text")
    o = sub.add_parser("override", help="force a unit on or off, or back to auto")
    o.add_argument("unit")
    o.add_argument("mode", choices=["on", "off", "auto"])
    o.add_argument("reason")
    r = sub.add_parser("report", help="compare the cloud's ledger with a gateway db")
    r.add_argument("gateway_db", type=Path)
    return p


def _command(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    if ns.what == "topup":
        args = {
            "account_id": ns.account,
            "amount_minor": ns.amount_minor,
            "currency": ns.currency,
            "ref": ns.ref,
        }
        return "topup", args
    if ns.what == "adjust":
        return "adjustment", {
            "account_id": ns.account,
            "amount_minor": ns.amount_minor,
            "currency": ns.currency,
            "reason": ns.reason,
        }
    if ns.what == "tariff":
        effective = ns.effective or datetime.now(UTC).isoformat()
        return "tariff_set", {
            "tariff_id": ns.tariff_id,
            "effective_at": effective,
            "prices": {
                ns.medium: {
                    "price": ns.price,
                    "per": ns.per,
                    "standing_charge_per_day": ns.standing,
                }
            },
        }
    if ns.what == "message":
        return "display_message", {"account_id": ns.account, "text": ns.text}
    return "unit_override", {"unit_id": ns.unit, "mode": ns.mode, "reason": ns.reason}


async def _send(ns: argparse.Namespace) -> int:
    key: Ed25519PrivateKey | None = None
    if not ns.unsigned:
        text = ns.key or os.environ.get(KEY_ENV)
        if not text:
            print(
                f"no key: pass --key or set {KEY_ENV} (see `keygen`), or --unsigned",
                file=sys.stderr,
            )
            return 2
        key = private_key_from_b64(text)
    kind, args = _command(ns)
    command_id = getattr(ns, "command_id", None)
    envelope = make_command(
        ns.site, kind, args, key, command_id=command_id, valid_for=timedelta(hours=1)
    )
    import json

    sent_id = json.loads(json.loads(envelope)["command"])["command_id"]
    await publish_command(ns.host, ns.port, Topics(ns.root, ns.site), envelope)
    print(f"sent {kind} {sent_id}")
    deadline = asyncio.get_running_loop().time() + ns.wait
    while ns.wait and asyncio.get_running_loop().time() < deadline:
        store = CloudStore(ns.db, ns.site)
        results = store.results_for(sent_id)
        store.close()
        if results:
            print(f"result: {results[0]}")
            return 0 if results[0]["status"] in ("applied", "duplicate") else 1
        await asyncio.sleep(0.2)
    if ns.wait:
        print("no result yet (is `serve` running and the gateway connected?)")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one reference-cloud command."""
    ns = _parser().parse_args(argv)
    if ns.what == "keygen":
        key = Ed25519PrivateKey.generate()
        print(f"private (keep secret, {KEY_ENV}): {private_key_b64(key)}")
        print(f"public (gateway cloud.public_key): {public_key_b64(key)}")
        return 0
    if ns.what == "serve":
        cloud = ReferenceCloud(ns.host, ns.port, ns.site, ns.db, topic_root=ns.root)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(cloud.run())
        cloud.store.close()
        return 0
    if ns.what == "report":
        report = reconcile(ns.db, ns.gateway_db, ns.site)
        print("\n".join(report.lines()))
        return 0 if report.agrees else 1
    return asyncio.run(_send(ns))


if __name__ == "__main__":
    raise SystemExit(main())
