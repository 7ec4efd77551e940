"""The MQTT topic contract: topic names under the versioned root, the payload
size limit, and the JSON encoding every message uses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# A command or acknowledgement larger than this is refused unread: nothing in
# the contract comes close, so a bigger payload is a mistake or an attack.
MAX_DOWNLINK_BYTES = 16 * 1024

# An uplink publish carries up to this many bytes of messages; mosquitto's
# default message size limit is far above it.
MAX_UPLINK_BYTES = 256 * 1024

CONTRACT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic one site uses, built from the configured root and site id."""

    root: str
    site: str

    @property
    def base(self) -> str:
        return f"{self.root}/{self.site}"

    @property
    def status(self) -> str:
        """Retained "online"/"offline"; the last will sets "offline"."""
        return f"{self.base}/status"

    def uplink(self, kind: str) -> str:
        """Where batches of one kind of uplink message go."""
        return f"{self.base}/up/{kind}"

    @property
    def uplink_all(self) -> str:
        return f"{self.base}/up/+"

    @property
    def ack(self) -> str:
        """The cloud's retained acknowledgement of what it has stored."""
        return f"{self.base}/ack"

    @property
    def commands(self) -> str:
        """Signed downlink commands."""
        return f"{self.base}/cmd"

    @property
    def command_results(self) -> str:
        """The result of every command (an uplink kind of its own)."""
        return self.uplink("command_result")


def dumps(payload: Any) -> bytes:
    """Encode a payload the one way the contract uses: compact UTF-8 JSON."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
