"""Refusals with distinct reasons: wrong key, forged MAC, cleartext claiming
encryption, replay; and keys never showing in text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import structlog

from drivers.wmbus import (
    CleartextClaimsEncryptionError,
    MacMismatchError,
    MeterKey,
    MissingKeyError,
    Reason,
    ReplayError,
    StreamGuard,
    UnexpectedCleartextError,
    WmbusPipeline,
    WmbusSecurityError,
    WrongKeyError,
    decode_frame,
)
from gateway.clock import Stamp
from gateway.model import SecurityError
from simulators.wmbus_meter import MODE5_TEMPLATE, MODE5_TEMPLATE_KEY, SimulatedMeter

STAMP = Stamp(datetime(2026, 3, 1, tzinfo=UTC), True)
KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")


def frame_and_key(row: dict[str, Any]) -> tuple[bytes, MeterKey]:
    return bytes.fromhex(row["hex"]), MeterKey.from_hex(row["key"])


def refusal(rows: list[dict[str, Any]], case: str) -> WmbusSecurityError:
    """Provoke one kind of refusal and return the exception."""
    with pytest.raises(WmbusSecurityError) as caught:
        if case == "wrong_key":
            frame, _ = frame_and_key(rows[38])
            decode_frame(frame, MeterKey(KEY))
        elif case == "forged_mac":
            frame, key = frame_and_key(rows[44])
            forged = bytearray(frame)
            forged[60] ^= 0x01  # inside the encrypted, authenticated data
            decode_frame(bytes(forged), key)
        elif case == "cleartext":
            decode_frame(*frame_and_key(rows[40]))
        elif case == "replay":
            meter = SimulatedMeter(MODE5_TEMPLATE, MODE5_TEMPLATE_KEY, KEY)
            pipeline = WmbusPipeline({meter.meter_id: KEY}, StreamGuard())
            old = meter.next_frame()
            assert pipeline.process(old, STAMP) is not None
            assert pipeline.process(meter.next_frame(), STAMP) is not None
            pipeline.process(old, STAMP)
    return caught.value


CASES = {
    "wrong_key": (WrongKeyError, Reason.WRONG_KEY),
    "forged_mac": (MacMismatchError, Reason.MAC_MISMATCH),
    "cleartext": (CleartextClaimsEncryptionError, Reason.CLEARTEXT_CLAIMS_ENCRYPTION),
    "replay": (ReplayError, Reason.REPLAY),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_refusal_has_its_own_class_and_reason(
    rows: list[dict[str, Any]], case: str
) -> None:
    exc = refusal(rows, case)
    cls, reason = CASES[case]
    assert type(exc) is cls
    assert exc.reason is reason
    assert isinstance(exc, SecurityError)


def test_the_four_reasons_are_distinct(rows: list[dict[str, Any]]) -> None:
    reasons = {refusal(rows, case).reason for case in CASES}
    assert len(reasons) == 4


def test_cleartext_message_names_the_problem(rows: list[dict[str, Any]]) -> None:
    assert "cleartext claims encryption" in str(refusal(rows, "cleartext"))
    assert "wrong key or forged" in str(refusal(rows, "wrong_key"))


def test_forged_mac_field_is_refused(rows: list[dict[str, Any]]) -> None:
    frame, key = frame_and_key(rows[44])
    forged = bytearray(frame)
    forged[27] ^= 0x80  # first byte of the 8-byte AFL MAC
    with pytest.raises(MacMismatchError):
        decode_frame(bytes(forged), key)


def test_mode7_with_wrong_key_fails_the_mac(rows: list[dict[str, Any]]) -> None:
    frame, _ = frame_and_key(rows[43])
    with pytest.raises(MacMismatchError):
        decode_frame(frame, MeterKey(KEY))


def test_ell_ctr_wrong_key_is_refused(rows: list[dict[str, Any]]) -> None:
    # jMBus's test: this wrong key must fail on the payload CRC.
    frame = bytes.fromhex(rows[42]["hex"])
    with pytest.raises(WrongKeyError):
        decode_frame(frame, MeterKey.from_hex("4E5508544202058100DFEFA06B0934AF"))


def test_encrypted_frame_without_key_asks_for_one(rows: list[dict[str, Any]]) -> None:
    with pytest.raises(MissingKeyError) as caught:
        decode_frame(bytes.fromhex(rows[38]["hex"]))
    assert "configure its AES key" in str(caught.value)


def test_unencrypted_frame_for_a_keyed_meter_is_refused(
    rows: list[dict[str, Any]],
) -> None:
    with pytest.raises(UnexpectedCleartextError):
        decode_frame(bytes.fromhex(rows[9]["hex"]), MeterKey(KEY))


def test_keys_never_show_in_repr_errors_or_logs(rows: list[dict[str, Any]]) -> None:
    key = MeterKey(KEY)
    secrets = {KEY.hex(), KEY.hex().upper()}
    texts = [repr(key), str(key)]
    pipeline = WmbusPipeline({"20096221": KEY, "43054304": KEY}, StreamGuard())
    texts.append(repr(pipeline))
    with structlog.testing.capture_logs() as logs:
        for row in rows:
            try:
                pipeline.process(bytes.fromhex(row["hex"]), STAMP)
            except Exception as exc:
                texts += [str(exc), repr(exc)]
    texts += [repr(entry) for entry in logs]
    assert not [t for t in texts if any(s in t for s in secrets)]


def test_key_must_be_sixteen_bytes() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        MeterKey(b"short")
    with pytest.raises(ValueError, match="32 hex digits"):
        MeterKey.from_hex("zz")
