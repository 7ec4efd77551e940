"""The one place that builds an aiomqtt client: TLS and credentials from the
config, a persistent MQTT 5 session, the "offline" last will, and the
jittered, capped backoff between connection attempts."""

from __future__ import annotations

import random
import ssl

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.config.cloud import Cloud
from gateway.sync.contract import Topics, dumps

OFFLINE = dumps({"state": "offline"})


def client_id(cloud: Cloud, site_id: str) -> str:
    """Return the MQTT client id; a changed id makes the broker forget the session."""
    return cloud.client_id or f"prepaidgw-{site_id}"


def make_client(cloud: Cloud, site_id: str, topics: Topics) -> aiomqtt.Client:
    """Build a client for one connection attempt (aiomqtt 2.x does not reconnect)."""
    # MQTT 5: clean_start False plus a session expiry keeps our subscription
    # and the QoS 1 commands queued for us while we are away or restarting.
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = cloud.session_expiry_s
    return aiomqtt.Client(
        cloud.host,
        cloud.port,
        username=cloud.username,
        password=None if cloud.password is None else cloud.password.get_secret_value(),
        identifier=client_id(cloud, site_id),
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=properties,
        will=aiomqtt.Will(topics.status, OFFLINE, qos=1, retain=True),
        keepalive=cloud.keepalive_s,
        timeout=10,
        tls_context=_tls_context(cloud) if cloud.tls else None,
        # paho's default of 20 would cap the drainer's window of batches.
        max_inflight_messages=max(20, cloud.in_flight_window // cloud.batch_max + 2),
    )


def _tls_context(cloud: Cloud) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=None if cloud.ca_file is None else str(cloud.ca_file)
    )
    if cloud.cert_file is not None and cloud.key_file is not None:
        context.load_cert_chain(str(cloud.cert_file), str(cloud.key_file))
    return context


class Backoff:
    """Delays between reconnect attempts: doubling up to a cap, half of it random.

    The random half keeps many gateways from reconnecting in step after a
    broker restart.
    """

    def __init__(self, first_s: float = 1.0, cap_s: float = 60.0) -> None:
        self._first = first_s
        self._cap = cap_s
        self._attempt = 0

    def next(self) -> float:
        """Return how long to wait before the next attempt."""
        ceiling = min(self._cap, self._first * 2**self._attempt)
        self._attempt = min(self._attempt + 1, 30)
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))

    def reset(self) -> None:
        """Start again from the first delay (after a connection succeeded)."""
        self._attempt = 0
