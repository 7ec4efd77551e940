"""Decode one wireless M-Bus frame end to end: CRCs, link header, extended
link and authentication layers, transport header, decryption, records, and
the billing register, into a Telegram."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gateway.clock import Stamp
from gateway.model import Medium

from .crc import crc16_en13757, strip_link_crcs
from .errors import (
    CleartextClaimsEncryptionError,
    MacMismatchError,
    MissingKeyError,
    TruncatedFrameError,
    UnexpectedCleartextError,
    UnsupportedFrameError,
)
from .link import Address, parse_link
from .records import BillingRegister, Record, billing_register, decode_records
from .security import (
    MARKER,
    MeterKey,
    decrypt_cbc,
    ell_ctr_decrypt,
    mode5_iv,
    mode7_keys,
    verify_mac,
)
from .transport import (
    CI_AFL,
    CI_ELL_LONG,
    CI_ELL_SHORT,
    Afl,
    Ell,
    parse_afl,
    parse_ell,
    parse_tpl,
)

ZERO_IV = bytes(16)


@dataclass(frozen=True, slots=True)
class Telegram:
    """What one telegram says: who sent it, how it was protected, its values."""

    id: str
    manufacturer: str
    version: int
    device_type: int
    medium_text: str
    medium: Medium | None
    access_number: int | None
    security_mode: int
    encrypted: bool  # the data was decrypted and verified with our key
    records: list[Record] = field(default_factory=list)
    billing: BillingRegister | None = None
    message_counter: int | None = None  # AFL counter (mode 7), if any
    frame_format: str = "none"
    link_id: str = ""  # the radio's own id when a long header names the meter
    stamp: Stamp | None = None  # when the receiver heard it
    rssi: int | None = None  # dBm, if the receiver reports it


def _ell_payload(
    data: bytes, pos: int, ell: Ell, address: Address, key: MeterKey | None
) -> tuple[bytes, bool]:
    """Return data with the ELL's encrypted part replaced by plaintext."""
    if ell.encryption == 0:
        return data, False
    if ell.encryption != 1:
        raise UnsupportedFrameError(
            f"extended link layer cipher {ell.encryption} is not supported"
        )
    if key is None:
        if crc16_en13757(data[pos + 2 :]) == int.from_bytes(
            data[pos : pos + 2], "little"
        ):
            # Stored or forwarded already decrypted; without a key it may be read.
            return data[:pos] + data[pos + 2 :], False
        raise MissingKeyError(
            f"meter {address.id} encrypts its extended link layer;"
            " configure its AES key"
        )
    plain = ell_ctr_decrypt(key, address.raw, ell.control, ell.session_raw, data[pos:])
    return data[:pos] + plain, True


def _require_mode7(afl: Afl | None, meter: str) -> Afl:
    if afl is None or afl.message_counter is None or not afl.mac:
        raise MacMismatchError(
            f"meter {meter} sends mode 7 without an authentication layer MAC;"
            " refusing unauthenticated data"
        )
    return afl


KeySource = MeterKey | Mapping[str, MeterKey] | None


def _lookup(keys: KeySource, *meter_ids: str) -> MeterKey | None:
    if keys is None or isinstance(keys, MeterKey):
        return keys
    for meter in meter_ids:
        if meter in keys:
            return keys[meter]
    return None


def decode_frame(frame: bytes, keys: KeySource = None) -> Telegram:
    """Decode a raw telegram (from its L-field) and decrypt it.

    `keys` is one key, or keys by printed 8-digit meter id; the meter's
    key is looked up by the transport header's id, then the link's.
    """
    data, frame_format = strip_link_crcs(bytes(frame))
    data = data[: data[0] + 1]
    link = parse_link(data)
    key = _lookup(keys, link.address.id)
    pos = 10
    ell: Ell | None = None
    afl: Afl | None = None
    encrypted = False

    if data[pos] in (CI_ELL_SHORT, CI_ELL_LONG):
        ell, pos = parse_ell(data, pos)
        data, encrypted = _ell_payload(data, pos, ell, link.address, key)
        if pos >= len(data):
            raise UnsupportedFrameError("extended link layer carries no payload")
    if data[pos] == CI_AFL:
        afl, pos = parse_afl(data, pos)
        if afl.more_fragments:
            # LIMITATION: fragmented telegrams (several AFL fragments) are
            # not reassembled; no meter in our corpus sends them.
            raise UnsupportedFrameError("fragmented telegrams are not supported")
    tpl_start = pos
    tpl, pos = parse_tpl(data, pos)
    address = tpl.address or link.address
    if tpl.address is not None:
        key = _lookup(keys, address.id, link.address.id)
    mode = tpl.security_mode
    access = (
        tpl.access_number
        if tpl.access_number is not None
        else (ell.access_number if ell else None)
    )
    payload = data[pos:]
    blocks = tpl.encrypted_blocks * 16 or len(payload) - len(payload) % 16
    if mode in (5, 7) and blocks > len(payload):
        raise TruncatedFrameError(
            f"meter {address.id}: header says {blocks // 16} encrypted blocks"
            f" but only {len(payload)} bytes follow"
        )

    if mode == 0:
        if key is not None and not encrypted:
            raise UnexpectedCleartextError(
                f"meter {address.id} has a key configured but sent an unencrypted"
                " telegram; refused (remove the key if the meter is unencrypted)"
            )
    elif mode == 5:
        if key is None:
            if not payload.startswith(MARKER):
                raise MissingKeyError(
                    f"meter {address.id} uses security mode 5; configure its AES key"
                )
        else:
            iv = mode5_iv(address.raw, tpl.access_number or 0)
            payload = decrypt_cbc(key, iv, payload[:blocks]) + payload[blocks:]
            encrypted = True
    elif mode == 7:
        if key is None:
            if not payload.startswith(MARKER):
                raise MissingKeyError(
                    f"meter {address.id} uses security mode 7; configure its AES key"
                )
        else:
            checked = _require_mode7(afl, address.id)
            assert checked.message_counter is not None
            kenc, kmac = mode7_keys(key, checked.message_counter, address.raw[2:6])
            try:
                verify_mac(kmac, checked.mac_input_head + data[tpl_start:], checked.mac)
            except MacMismatchError:
                # Report the more telling reason when the data is visibly clear.
                if payload.startswith(MARKER):
                    raise CleartextClaimsEncryptionError(
                        "cleartext claims encryption: mode 7 header but clear data;"
                        " refused because a key is configured for this meter"
                    ) from None
                raise
            payload = decrypt_cbc(MeterKey(kenc), ZERO_IV, payload[:blocks])
            payload += data[pos + blocks :]
            encrypted = True
    else:
        raise UnsupportedFrameError(
            f"security mode {mode} of meter {address.id} is not supported"
        )

    records = decode_records(payload.lstrip(MARKER[:1]))
    medium = address.medium
    return Telegram(
        id=address.id,
        manufacturer=link.address.manufacturer,
        version=address.version,
        device_type=address.device_type,
        medium_text=address.medium_text,
        medium=medium,
        access_number=access,
        security_mode=mode,
        encrypted=encrypted,
        records=records,
        billing=billing_register(records, medium),
        message_counter=afl.message_counter if afl else None,
        frame_format=frame_format,
        link_id=link.address.id,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return value


def telegram_to_dict(telegram: Telegram) -> dict[str, Any]:
    """Return a JSON-ready dict; decimals become strings so nothing rounds."""
    return {
        "id": telegram.id,
        "manufacturer": telegram.manufacturer,
        "version": telegram.version,
        "device_type": telegram.device_type,
        "medium_text": telegram.medium_text,
        "medium": telegram.medium.value if telegram.medium else None,
        "access_number": telegram.access_number,
        "message_counter": telegram.message_counter,
        "security_mode": telegram.security_mode,
        "encrypted": telegram.encrypted,
        "frame_format": telegram.frame_format,
        "link_id": telegram.link_id,
        "stamp": telegram.stamp.iso() if telegram.stamp else None,
        "clock_synced": telegram.stamp.synced if telegram.stamp else None,
        "rssi": telegram.rssi,
        "billing": None
        if telegram.billing is None
        else {
            "value": str(telegram.billing.value),
            "unit": telegram.billing.unit,
            "quantity": telegram.billing.quantity,
        },
        "records": [
            {
                "quantity": r.quantity,
                "value": _plain(r.value),
                "text": r.text,
                "unit": r.unit,
                "function": r.function,
                "storage": r.storage,
                "tariff": r.tariff,
                "subunit": r.subunit,
                "qualifiers": list(r.qualifiers),
            }
            for r in telegram.records
        ],
    }


def telegram_to_json(telegram: Telegram) -> str:
    """Serialise a telegram to JSON (decimals as strings)."""
    return json.dumps(telegram_to_dict(telegram), sort_keys=True)
