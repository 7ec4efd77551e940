"""Housekeeping: the time-driven jobs of the ledger (standing charges, and any
rule that acts when a day, a period or a window begins or ends).

Each job takes the database, the site and the current stamp, does its work in
its own transactions, and returns True when it changed money or a decision,
so the daemon re-sends commands to the units. Jobs are idempotent: running
one twice, or late after an outage, books nothing twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from gateway import accounts, budgets, laundry, messages, notify, standing
from gateway.clock import Stamp
from gateway.site import SitePlan

Job = Callable[[sqlite3.Connection, SitePlan, Stamp], bool]


@dataclass(frozen=True)
class Chore:
    """A named job and how often (seconds) the daemon runs it."""

    name: str
    every_s: float
    run: Job


def _standing_charges(conn: sqlite3.Connection, site: SitePlan, stamp: Stamp) -> bool:
    return standing.accrue(conn, site, stamp) > 0


def _outbox_bounds(conn: sqlite3.Connection, site: SitePlan, stamp: Stamp) -> bool:
    """Keep the outbox within its bounds even while no cloud is configured."""
    from gateway.config.cloud import Cloud
    from gateway.store import DB_NAME
    from gateway.sync.bounds import Bounds, enforce

    cloud = site.config.cloud
    if cloud is None:
        defaults = Cloud.model_fields
        cloud_bounds = Bounds(
            defaults["max_rows"].default,
            defaults["max_bytes"].default,
            defaults["min_free_disk_mb"].default,
        )
    else:
        cloud_bounds = Bounds(cloud.max_rows, cloud.max_bytes, cloud.min_free_disk_mb)
    enforce(conn, cloud_bounds, site.config.state_dir / DB_NAME, stamp)
    return False


# The daemon runs each chore at start and then every `every_s` seconds.
CHORES: list[Chore] = [
    Chore("standing_charges", 600.0, _standing_charges),
    Chore("budgets", 600.0, budgets.chore),
    Chore("laundry", 60.0, laundry.chore),
    Chore("display_units", 600.0, messages.chore),
    Chore("outbox_bounds", 30.0, _outbox_bounds),
    # Cut off once friendly hours end or the clock syncs; then notify residents.
    Chore("credit_rules", 60.0, accounts.chore),
    Chore("notifications", 30.0, notify.kick),
]
