"""The `cloud:` section of a site's YAML: how to reach the MQTT broker, whose
signature a downlink command must carry, and how big the outbox may grow."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)


class Cloud(BaseModel):
    """The MQTT uplink to the cloud and the rules for its commands."""

    # Same rules as gateway.config.model.Strict, which cannot be imported
    # here: that module imports this one for its `cloud` field.
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, description="broker host name or address")
    port: int = Field(8883, ge=1, le=65535)
    tls: bool = Field(True, description="connect with TLS (port 8883 by convention)")
    ca_file: Path | None = Field(None, description="CA bundle that signed the broker")
    cert_file: Path | None = Field(None, description="client certificate (PEM)")
    key_file: Path | None = Field(None, description="client private key (PEM)")
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = Field(
        None,
        max_length=128,
        description="MQTT client id; defaults to prepaidgw-<site id>. It must stay "
        "the same across restarts so the broker keeps the session.",
    )
    topic_root: str = Field(
        "prepaid/v1", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"
    )
    public_key: str | None = Field(
        None,
        description="the cloud's Ed25519 public key: 32 bytes in base64, or PEM",
    )
    development_site: bool = Field(
        False, description="accept unsigned commands; never on a real building"
    )
    keepalive_s: int = Field(30, ge=5, le=600)
    session_expiry_s: int = Field(
        7 * 24 * 3600,
        ge=0,
        description="how long the broker keeps commands for a gateway that is away",
    )
    max_rows: int = Field(200_000, ge=100, description="outbox bound in messages")
    max_bytes: int = Field(100_000_000, ge=100_000, description="outbox bound in bytes")
    min_free_disk_mb: int = Field(
        200, ge=0, description="shed telemetry when the state disk has less free"
    )
    in_flight_window: int = Field(
        1000,
        ge=1,
        # An ack lists at most 5000 seqs above its watermark; a wider window
        # would leave stored messages unacknowledged until they are resent.
        le=5000,
        description="messages sent but not yet acknowledged",
    )
    batch_max: int = Field(100, ge=1, le=1000, description="messages in one publish")
    resend_after_s: float = Field(
        30.0, gt=0, description="resend what the cloud has not acknowledged by then"
    )
    max_command_validity_s: int = Field(
        7 * 24 * 3600,
        ge=60,
        description="a command valid for longer than this is refused",
    )

    @field_validator("public_key")
    @classmethod
    def _ed25519_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from gateway.sync.signing import SigningError, load_public_key

        try:
            load_public_key(value)
        except SigningError as err:
            raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _needs_key(self) -> Cloud:
        if self.public_key is None and not self.development_site:
            raise ValueError(
                "cloud.public_key is missing: set the cloud's Ed25519 public key, or "
                "set development_site: true to accept unsigned commands (test sites "
                "only)"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cloud.cert_file and cloud.key_file go together: set both")
        return self
