"""Notifications to residents through apprise (e-mail, SMS, messengers):
queued in the database by gateway.warnings, sent here outside the event loop
in a worker thread with a timeout, each once.

Apprise URLs carry passwords and API tokens. None of it reaches a log line:
apprise's own logger and urllib3's (which logs request paths, where some
services put their token) pass through a filter that masks every secret
part of every URL this module has been given, and our own lines name a
channel by its scheme only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

import structlog

from gateway.clock import Stamp
from gateway.config.credit import apprise_urls, contacts_of
from gateway.site import SitePlan
from gateway.store import transaction

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 3
MASK = "****"

# Services whose URL keeps its token in the host or path rather than in a
# password; every part of such a URL is treated as secret.
_PLAIN_SCHEMES = {"json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos"}
_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")

_secrets: set[str] = set()


def secret_parts(url: str) -> set[str]:
    """Return the substrings of an apprise URL that must never be printed."""
    parts = {url}
    scheme, _, rest = url.partition("://")
    address, _, query = rest.partition("?")
    userinfo = address.split("/", 1)[0].rpartition("@")[0]
    # Query values may be headers (json://...?+Authorization=...) or tokens.
    pieces = [value for _, _, value in (q.partition("=") for q in query.split("&"))]
    pieces += re.split(r"[:@]", userinfo) if userinfo else []
    if scheme.lower() not in _PLAIN_SCHEMES:
        pieces += re.split(r"[:/@]", address)
    for piece in pieces:
        if len(piece) >= 3:
            parts |= {piece, unquote(piece)}
    return parts


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """Mask user:password@ in any URL, and every known secret part, in `text`."""
    text = _USERINFO.sub(MASK + "@", text)
    # Longest first, so a whole URL is masked before a piece of it.
    for secret in sorted(secrets if secrets is not None else _secrets, key=len)[::-1]:
        text = text.replace(secret, MASK)
    return text


class _Redactor(logging.Filter):
    """Rewrite a library's log record with its secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        record.exc_info = None
        record.exc_text = None
        return True


def _guard_library_logs() -> None:
    for name in ("apprise", "urllib3", "urllib3.connectionpool", "requests"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Redactor) for f in logger.filters):
            logger.addFilter(_Redactor())
    # urllib3 prints every request path at DEBUG; some services put their
    # token there. Keep it to warnings (which the filter still masks).
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def remember_secrets(urls: Iterable[str]) -> None:
    """Teach the log filter the secret parts of these URLs."""
    for url in urls:
        _secrets.update(secret_parts(url))


def channel_names(urls: Iterable[str]) -> list[str]:
    """Name channels by scheme only, for logs and results."""
    return [url.split("://", 1)[0] for url in urls]


def send_blocking(urls: list[str], title: str, body: str, timeout_s: float) -> bool:
    """Send one message to every URL with apprise; True if all accepted it.

    Blocks: call it from a worker thread.
    """
    import apprise

    _guard_library_logs()
    remember_secrets(urls)
    sender = apprise.Apprise()
    for url in urls:
        # cto/rto bound apprise's own connect and read waits, so the worker
        # thread ends soon after the caller stops waiting for it.
        joiner = "&" if "?" in url else "?"
        seconds = max(1, int(timeout_s))
        if not sender.add(f"{url}{joiner}cto={seconds}&rto={seconds}"):
            sender.add(url)
    return bool(sender.notify(body=body, title=title))


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one queued notification on this attempt."""

    id: str
    account_id: str
    sent: bool
    gave_up: bool
    error: str | None


def _due(conn: sqlite3.Connection, limit: int) -> list[sqlite3.Row]:
    return conn.execute(
        """SELECT n.*, a.contact FROM notifications n
           JOIN accounts a ON a.id = n.account_id
           WHERE n.sent_at IS NULL AND n.gave_up_at IS NULL
           ORDER BY n.created_at LIMIT ?""",
        (limit,),
    ).fetchall()


def _contacts(text: str | None) -> list[str]:
    if text is None:
        return []
    # The YAML path stores a JSON list; the cloud may have set one plain string.
    if text.startswith("["):
        loaded = json.loads(text)
        return [str(c) for c in loaded]
    return contacts_of(text)


async def deliver(
    conn: sqlite3.Connection, site: SitePlan, stamp: Stamp, *, limit: int = 20
) -> list[Delivery]:
    """Send the queued notifications, each in a worker thread with a timeout."""
    settings = site.config.credit.notify
    done = []
    for row in _due(conn, limit):
        urls = apprise_urls(_contacts(row["contact"]), settings.email_via)
        remember_secrets(urls)
        error: str | None = None
        sent = False
        if not urls:
            error = "the account has no contact that can be reached"
        else:
            try:
                sent = await asyncio.wait_for(
                    asyncio.to_thread(
                        send_blocking,
                        urls,
                        row["title"],
                        row["body"],
                        settings.timeout_s,
                    ),
                    settings.timeout_s,
                )
                if not sent:
                    error = "apprise could not deliver to every channel"
            except TimeoutError:
                error = f"no answer within {settings.timeout_s} s"
            except Exception as err:  # an apprise plugin may raise anything
                error = redact(f"{type(err).__name__}: {err}")
        attempts = row["attempts"] + 1
        gave_up = not sent and (not urls or attempts >= MAX_ATTEMPTS)
        with transaction(conn):
            conn.execute(
                """UPDATE notifications SET attempts = ?, sent_at = ?, gave_up_at = ?,
                       last_error = ? WHERE id = ?""",
                (
                    attempts,
                    stamp.iso() if sent else None,
                    stamp.iso() if gave_up else None,
                    error,
                    row["id"],
                ),
            )
        channels = channel_names(urls)
        if sent:
            log.info("notification_sent", account=row["account_id"], channels=channels)
        elif gave_up or attempts == 1:
            # A failing channel is logged on its first failure and when given up.
            log.warning(
                "notification_failed",
                account=row["account_id"],
                channels=channels,
                attempts=attempts,
                gave_up=gave_up,
                error=error,
            )
        done.append(Delivery(row["id"], row["account_id"], sent, gave_up, error))
    return done


_running: set[asyncio.Task[list[Delivery]]] = set()


def kick(conn: sqlite3.Connection, site: SitePlan, stamp: Stamp) -> bool:
    """Start sending queued notifications in the background (one sender at a time).

    Meant as a housekeeping chore: it returns at once, and never changes
    money or a decision, so it always returns False. Without a running event
    loop (the CLI) it does nothing; the daemon sends later.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    if _running or not _due(conn, 1):
        return False
    task = loop.create_task(deliver(conn, site, stamp))
    _running.add(task)
    task.add_done_callback(_finished)
    return False


def _finished(task: asyncio.Task[list[Delivery]]) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("notification_sender_failed", error=redact(str(task.exception())))
