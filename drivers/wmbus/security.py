"""Wireless M-Bus security: AES-128 keys that never print, mode 5 (AES-CBC),
mode 7 (OMS 4 / EN 13757-7 key derivation, CMAC check, AES-CBC with zero IV)
and the extended link layer's AES-CTR (CI 8D)."""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from .crc import crc16_en13757
from .errors import CleartextClaimsEncryptionError, MacMismatchError, WrongKeyError

MARKER = b"\x2f\x2f"


class MeterKey:
    """An AES-128 key; its repr and str never show the bytes."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError(
                f"an AES-128 meter key has 16 bytes (32 hex digits); got {len(key)}"
            )
        self._key = bytes(key)

    @classmethod
    def from_hex(cls, text: str) -> MeterKey:
        """Build a key from 32 hex digits, as installers type it."""
        try:
            raw = bytes.fromhex(text.strip())
        except ValueError:
            raise ValueError("a meter key must be 32 hex digits") from None
        return cls(raw)

    def secret(self) -> bytes:
        """Hand out the raw bytes, for the cipher only."""
        return self._key

    def __repr__(self) -> str:
        return "MeterKey(<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MeterKey) and hmac.compare_digest(
            self._key, other._key
        )

    def __hash__(self) -> int:
        return hash(MeterKey)


def _cbc(key: bytes, iv: bytes, data: bytes, *, encrypt: bool) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return op.update(data) + op.finalize()


def cmac(key: bytes, data: bytes) -> bytes:
    """Return the full 16-byte AES-CMAC of data."""
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def mode5_iv(address_raw: bytes, access_number: int) -> bytes:
    """IV of mode 5: M(2) A(6) of the meter, then the access number 8 times."""
    return address_raw[:8] + bytes([access_number]) * 8


def _check_plaintext(plain: bytes, raw: bytes) -> None:
    if plain.startswith(MARKER):
        return
    if raw.startswith(MARKER):
        raise CleartextClaimsEncryptionError(
            "cleartext claims encryption: the header says encrypted but the data"
            " arrives in clear; refused because a key is configured for this meter"
        )
    raise WrongKeyError(
        "wrong key or forged: decrypted data does not start with 2F 2F;"
        " check the key configured for this meter"
    )


def decrypt_cbc(key: MeterKey, iv: bytes, data: bytes) -> bytes:
    """Decrypt whole 16-byte blocks and insist on the 2F 2F marker."""
    usable = len(data) - len(data) % 16
    if usable == 0:
        raise WrongKeyError("wrong key or forged: no whole AES block to decrypt")
    plain = _cbc(key.secret(), iv, data[:usable], encrypt=False)
    _check_plaintext(plain, data)
    return plain + data[usable:]


def encrypt_cbc(key: MeterKey, iv: bytes, plain: bytes) -> bytes:
    """Encrypt 16-byte blocks (for the simulator); pad with 2F as meters do."""
    if len(plain) % 16:
        plain += MARKER[:1] * (16 - len(plain) % 16)
    return _cbc(key.secret(), iv, plain, encrypt=True)


def mode7_keys(key: MeterKey, counter: int, meter_id_raw: bytes) -> tuple[bytes, bytes]:
    """Derive (Kenc, Kmac) for meter-to-gateway traffic (KDF-A of EN 13757-7).

    The CMAC input is one block: the derivation constant (0x00 for Kenc,
    0x01 for Kmac), the AFL message counter and the meter id, both as sent
    (least significant byte first), padded with 0x07.
    """
    tail = counter.to_bytes(4, "little") + meter_id_raw[:4] + b"\x07" * 7
    secret = key.secret()
    return cmac(secret, b"\x00" + tail), cmac(secret, b"\x01" + tail)


def verify_mac(kmac: bytes, mac_input: bytes, mac: bytes) -> None:
    """Compare the AFL MAC with the CMAC over its input, in constant time."""
    expected = cmac(kmac, mac_input)[: len(mac)]
    if not mac or not hmac.compare_digest(expected, mac):
        raise MacMismatchError(
            "MAC mismatch: the authentication layer's MAC does not match this"
            " frame; the frame is forged or corrupted, or the meter key is wrong"
        )


def ell_ctr_decrypt(
    key: MeterKey, address_raw: bytes, control: int, session: bytes, data: bytes
) -> bytes:
    """Decrypt the AES-CTR part of an ELL (CI 8D) and check its payload CRC.

    The first two plaintext bytes are a CRC over the rest; a mismatch means
    the key is wrong or the frame forged. Returns the plaintext after the CRC.
    """
    # The hop-count bit (0x10) of the communication control is left out of
    # the IV: a repeater sets it on the way, after the meter encrypted.
    iv = address_raw[:8] + bytes([control & 0xEF]) + session + b"\x00\x00\x00"
    op = Cipher(algorithms.AES(key.secret()), modes.CTR(iv)).decryptor()
    plain = op.update(data) + op.finalize()
    if crc16_en13757(plain[2:]) == int.from_bytes(plain[:2], "little"):
        return plain[2:]
    if crc16_en13757(data[2:]) == int.from_bytes(data[:2], "little"):
        raise CleartextClaimsEncryptionError(
            "cleartext claims encryption: the extended link layer says AES-CTR"
            " but the payload arrives in clear; refused because a key is configured"
        )
    raise WrongKeyError(
        "wrong key or forged: the extended link layer's payload CRC does not"
        " match after decryption; check the key configured for this meter"
    )
