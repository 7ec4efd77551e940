"""Authenticating LoRa frames: refuse forged frames (bad MIC) and replayed ones
(counter not above the last accepted), and number outgoing frames."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.lora.counters import CounterStore
from drivers.lora.frame import (
    Direction,
    Header,
    UnitKey,
    decrypt,
    direction_of,
    mic_matches,
    read_header,
    seal,
)
from drivers.lora.payloads import Body, decode_body, type_of
from gateway.model import SecurityError


class UnknownUnitError(SecurityError):
    """A frame names a unit address no key is configured for."""

    reason = "unknown_unit"


class ForgedFrameError(SecurityError):
    """The frame's MIC does not match: wrong key, corrupted or forged."""

    reason = "bad_mic"


class ReplayedFrameError(SecurityError):
    """The frame's counter is not above the last accepted: a replay or a duplicate."""

    reason = "replay"


class WrongDirectionError(SecurityError):
    """A frame travelling the other way: our own transmission reflected back."""

    reason = "wrong_direction"


@dataclass(frozen=True, slots=True)
class Verified:
    """An authentic, fresh frame and its decoded payload."""

    header: Header
    body: Body


class FrameGuard:
    """One end of the link: seals what it sends and verifies what it receives.

    `incoming` is the direction this end receives (UP on the gateway, DOWN
    on a unit). Keys live in UnitKey objects; no message here shows them.
    """

    def __init__(
        self, keys: dict[int, UnitKey], counters: CounterStore, incoming: Direction
    ) -> None:
        self._keys = keys
        self._counters = counters
        self._incoming = incoming
        self._outgoing = Direction.DOWN if incoming is Direction.UP else Direction.UP

    def key_for(self, address: int) -> UnitKey:
        try:
            return self._keys[address]
        except KeyError:
            raise UnknownUnitError(
                f"no LoRa key is configured for unit address 0x{address:08x}: add it "
                f"to the unit's entry in the gateway config"
            ) from None

    def reserve_counter(self, address: int) -> int:
        """Allocate the next outgoing counter for a unit; it is persisted already."""
        self.key_for(address)
        return self._counters.next(address, self._outgoing)

    def seal_with(self, address: int, counter: int, body: Body) -> bytes:
        """Encrypt and sign a payload under a counter from `reserve_counter`."""
        frame_type = type_of(body)
        if direction_of(frame_type) is not self._outgoing:
            raise ValueError(
                f"{frame_type.name} frames do not travel {self._outgoing.name}"
            )
        header = Header(frame_type, address, counter)
        return seal(self.key_for(address), header, body.encode())

    def seal(self, address: int, body: Body) -> tuple[int, bytes]:
        """Number, encrypt and sign a payload; return (counter, frame bytes)."""
        counter = self.reserve_counter(address)
        return counter, self.seal_with(address, counter, body)

    def verify(self, raw: bytes) -> Verified:
        """Return the frame's payload if it is authentic and new; raise otherwise.

        The order matters: the MIC is checked before the counter, so a
        forged frame cannot move a counter, and the counter is recorded
        before the payload is decoded, so a frame that passes once can never
        pass again even if its payload turns out malformed.
        """
        header = read_header(raw)
        if header.direction is not self._incoming:
            raise WrongDirectionError(
                f"{header.frame_type.name} frame travels {header.direction.name}, "
                f"this end receives {self._incoming.name}"
            )
        key = self.key_for(header.address)
        if not mic_matches(key, raw):
            raise ForgedFrameError(
                f"frame from unit 0x{header.address:08x} counter {header.counter} "
                f"failed its MIC: wrong key or forged"
            )
        if not self._counters.accept(header.address, self._incoming, header.counter):
            last = self._counters.last(header.address, self._incoming)
            raise ReplayedFrameError(
                f"frame from unit 0x{header.address:08x} has counter {header.counter}, "
                f"not above the last accepted {last}: replayed or duplicate"
            )
        frame = decrypt(key, header, raw)
        return Verified(header, decode_body(header.frame_type, frame.payload))
