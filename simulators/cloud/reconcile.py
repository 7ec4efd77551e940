"""The reconciliation report: the cloud's ledger beside the gateway's
database, account by account and entry by entry, to the smallest unit."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from simulators.cloud.store import CloudStore


@dataclass
class Report:
    """What agrees and what does not."""

    balances: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    missing_in_cloud: list[str] = field(default_factory=list)
    unknown_to_gateway: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    ledger_seq_gaps: list[int] = field(default_factory=list)
    outbox_seq_holes: int = 0
    outbox_pending: int = 0
    duplicate_deliveries: int = 0
    dropped: int = 0
    entries: int = 0

    @property
    def agrees(self) -> bool:
        """True when every balance and entry match and no sequence has a hole."""
        return (
            all(c == g for c, g in self.balances.values())
            and not self.missing_in_cloud
            and not self.unknown_to_gateway
            and not self.differing
            and not self.ledger_seq_gaps
            and self.outbox_seq_holes == 0
        )

    def lines(self) -> list[str]:
        """Return the report as text lines."""
        out = [f"{'account':<16}{'cloud':>14}{'gateway':>14}  match"]
        for account, (c, g) in sorted(self.balances.items()):
            out.append(f"{account:<16}{c!s:>14}{g!s:>14}  {'yes' if c == g else 'NO'}")
        out += [
            f"entries compared: {self.entries}",
            f"missing in cloud: {len(self.missing_in_cloud)}",
            f"unknown to gateway: {len(self.unknown_to_gateway)}",
            f"differing entries: {len(self.differing)} {self.differing[:5]}",
            f"gaps in ledger sequence: {self.ledger_seq_gaps[:10]}",
            f"holes in outbox sequence (neither stored nor declared dropped): "
            f"{self.outbox_seq_holes}",
            f"still in the gateway outbox: {self.outbox_pending}",
            f"duplicate deliveries absorbed: {self.duplicate_deliveries}",
            f"telemetry dropped by the gateway (declared): {self.dropped}",
            "AGREE" if self.agrees else "DISAGREE",
        ]
        return out


def reconcile(cloud_db: Path, gateway_db: Path, site: str) -> Report:
    """Compare the cloud's ledger for a site with the gateway's database."""
    cloud = CloudStore(cloud_db, site)
    gw = sqlite3.connect(f"file:{gateway_db}?mode=ro", uri=True)
    try:
        return _compare(cloud, gw)
    finally:
        cloud.close()
        gw.close()


def _compare(cloud: CloudStore, gw: sqlite3.Connection) -> Report:
    report = Report()
    ours = {
        r[0]: (r[1], r[2], r[3])
        for r in gw.execute(
            "SELECT id, account_id, amount_minor, seq FROM ledger_entries"
        )
    }
    theirs = {
        r[0]: (r[1], r[2], r[3])
        for r in cloud.conn.execute(
            "SELECT entry_id, account_id, amount_minor, ledger_seq FROM ledger "
            "WHERE site = ?",
            (cloud.site,),
        )
    }
    report.entries = len(ours)
    report.missing_in_cloud = sorted(set(ours) - set(theirs))
    report.unknown_to_gateway = sorted(set(theirs) - set(ours))
    report.differing = sorted(
        k for k in set(ours) & set(theirs) if ours[k] != theirs[k]
    )

    gateway_balances = {
        str(a): int(b)
        for a, b in gw.execute(
            "SELECT a.id, COALESCE(SUM(e.amount_minor), 0) FROM accounts a "
            "LEFT JOIN ledger_entries e ON e.account_id = a.id GROUP BY a.id"
        )
    }
    cached = {
        str(a): int(b)
        for a, b in gw.execute("SELECT account_id, balance_minor FROM balances")
    }
    cloud_balances = cloud.balances()
    for account in set(gateway_balances) | set(cloud_balances):
        g = gateway_balances.get(account)
        if g is not None and cached.get(account, 0) != g:
            report.differing.append(f"balance cache of {account}")
        report.balances[account] = (
            cloud_balances.get(account, 0 if g == 0 else None),
            g,
        )

    seqs = sorted(v[2] for v in theirs.values())
    if seqs:
        expected = set(range(1, seqs[-1] + 1))
        report.ledger_seq_gaps = sorted(expected - set(seqs))
    report.outbox_seq_holes = cloud.holes()
    report.outbox_pending = gw.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    report.duplicate_deliveries = cloud.conn.execute(
        "SELECT COALESCE(SUM(deliveries - 1), 0) FROM uplink WHERE site = ?",
        (cloud.site,),
    ).fetchone()[0]
    report.dropped = cloud.conn.execute(
        "SELECT COUNT(*) FROM dropped WHERE site = ?", (cloud.site,)
    ).fetchone()[0]
    return report
