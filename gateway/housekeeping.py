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

from gateway import standing
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


# The daemon runs each chore at start and then every `every_s` seconds.
CHORES: list[Chore] = [
    Chore("standing_charges", 600.0, _standing_charges),
]
