"""Downlink commands from raw MQTT bytes to the database: size, JSON, schema,
signature, site and kind are checked here, then gateway.commands applies."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

import structlog
from pydantic import ValidationError

from gateway import commands
from gateway.clock import Clock
from gateway.commands import CommandResult
from gateway.config.cloud import Cloud
from gateway.sync import schemas
from gateway.sync.contract import MAX_DOWNLINK_BYTES
from gateway.sync.signing import load_public_key, verify

log = structlog.get_logger(__name__)

# Results for refused (unauthenticated) commands are queued at most this many
# a minute: anyone able to publish on the command topic could otherwise fill
# the outbox with results that are never dropped.
_REFUSALS_PER_MINUTE = 60


class Intake:
    """Check and apply downlink commands for one site."""

    def __init__(
        self, conn: sqlite3.Connection, cloud: Cloud, site_id: str, clock: Clock
    ) -> None:
        self._conn = conn
        self._site = site_id
        self._clock = clock
        self._development = cloud.development_site
        self._key = (
            None if cloud.public_key is None else load_public_key(cloud.public_key)
        )
        self._max_validity = timedelta(seconds=cloud.max_command_validity_s)
        self._refusals: list[float] = []

    def handle(self, payload: bytes) -> CommandResult | None:
        """Check one command message and apply it; None if refused without a result."""
        if len(payload) > MAX_DOWNLINK_BYTES:
            return self._refuse(
                None,
                None,
                f"payload of {len(payload)} bytes is over "
                f"the {MAX_DOWNLINK_BYTES}-byte limit",
            )
        try:
            envelope = schemas.CommandEnvelope.model_validate_json(payload)
        except ValidationError as err:
            return self._refuse(None, None, _reason(err, "envelope"))

        claimed_id, claimed_kind = _claims(envelope.command)
        if envelope.signature is None:
            if not self._development:
                return self._refuse(
                    claimed_id,
                    claimed_kind,
                    "unsigned command refused: this site accepts only "
                    "commands signed with the cloud's key",
                )
        elif self._key is None:
            if not self._development:  # pragma: no cover - config forbids it
                return self._refuse(
                    claimed_id, claimed_kind, "no public key configured"
                )
        elif not verify(self._key, envelope.command.encode(), envelope.signature):
            return self._refuse(
                claimed_id, claimed_kind, "bad signature: not signed with the cloud key"
            )

        if claimed_kind is not None and claimed_kind not in schemas.ARGS:
            return self._refuse(
                claimed_id,
                claimed_kind,
                f"unknown command kind {claimed_kind!r}; known: "
                f"{', '.join(sorted(schemas.ARGS))}",
            )
        try:
            command = schemas.Command.model_validate_json(envelope.command)
        except ValidationError as err:
            return self._refuse(claimed_id, claimed_kind, _reason(err, "command"))
        if command.site != self._site:
            return self._refuse(
                command.command_id,
                command.kind,
                f"command is for site {command.site!r}, this is {self._site!r}",
            )
        return commands.apply(
            self._conn,
            command,
            commands.digest(envelope.command),
            self._clock.now(),
            max_validity=self._max_validity,
        )

    def _refuse(
        self, command_id: str | None, kind: str | None, reason: str
    ) -> CommandResult | None:
        now = self._clock.monotonic()
        self._refusals = [t for t in self._refusals if now - t < 60]
        if len(self._refusals) >= _REFUSALS_PER_MINUTE:
            log.warning(
                "command_refused_unreported", command_id=command_id, reason=reason
            )
            return None
        self._refusals.append(now)
        return commands.refuse(self._conn, command_id, kind, reason, self._clock.now())


def _claims(text: str) -> tuple[str | None, str | None]:
    """Read the id and kind a command claims, for the result of a refusal."""
    try:
        data = json.loads(text)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    cid, kind = data.get("command_id"), data.get("kind")
    return (
        cid[:128] if isinstance(cid, str) else None,
        kind[:64] if isinstance(kind, str) else None,
    )


def _reason(err: ValidationError, what: str) -> str:
    e = err.errors()[0]
    if e["type"] == "json_invalid":
        return f"{what} is not valid JSON: {e['msg']}"
    where = ".".join(str(p) for p in e["loc"]) or what
    return f"{what} breaks its schema at {where}: {e['msg']}"
