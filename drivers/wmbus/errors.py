"""Why a wireless M-Bus frame was refused: one exception class per reason, so
the daemon can count, alarm and log each cause on its own."""

from __future__ import annotations

from enum import StrEnum

from gateway.model import FrameError, SecurityError


class Reason(StrEnum):
    """Machine-readable cause of a refused frame; stable strings for alarms."""

    TRUNCATED = "truncated"
    BAD_CRC = "bad_crc"
    UNSUPPORTED = "unsupported"
    WRONG_KEY = "wrong_key"
    MAC_MISMATCH = "mac_mismatch"
    CLEARTEXT_CLAIMS_ENCRYPTION = "cleartext_claims_encryption"
    REPLAY = "replay"
    NO_KEY = "no_key"
    UNEXPECTED_CLEARTEXT = "unexpected_cleartext"


class WmbusFrameError(FrameError):
    """The bytes do not form a wireless M-Bus frame we can read."""

    reason: Reason = Reason.TRUNCATED

    def __init__(self, message: str, reason: Reason | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class TruncatedFrameError(WmbusFrameError):
    """The frame is shorter than its own header says."""

    reason = Reason.TRUNCATED


class CrcError(WmbusFrameError):
    """A link-layer CRC block does not match its data."""

    reason = Reason.BAD_CRC


class UnsupportedFrameError(WmbusFrameError):
    """A CI field or security mode this driver does not decode."""

    reason = Reason.UNSUPPORTED


class WmbusSecurityError(SecurityError):
    """The frame failed authentication; never trust its data."""

    reason: Reason = Reason.WRONG_KEY


class WrongKeyError(WmbusSecurityError):
    """Decryption did not yield the 2F 2F marker: wrong key or forged frame."""

    reason = Reason.WRONG_KEY


class MacMismatchError(WmbusSecurityError):
    """The mode-7 AFL MAC does not match: forged, corrupted or wrong key."""

    reason = Reason.MAC_MISMATCH


class CleartextClaimsEncryptionError(WmbusSecurityError):
    """A key is configured and the header says encrypted, yet the data is clear."""

    reason = Reason.CLEARTEXT_CLAIMS_ENCRYPTION


class ReplayError(WmbusSecurityError):
    """An access number or message counter went backwards: a replayed telegram."""

    reason = Reason.REPLAY


class MissingKeyError(WmbusSecurityError):
    """The frame is encrypted and no key is configured for its meter."""

    reason = Reason.NO_KEY


class DuplicateTelegram(Exception):
    """The same telegram was already seen within the duplicate window."""


class UnexpectedCleartextError(WmbusSecurityError):
    """A key is configured for the meter, yet the telegram is not encrypted."""

    reason = Reason.UNEXPECTED_CLEARTEXT
