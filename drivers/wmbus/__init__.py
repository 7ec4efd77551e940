"""Wireless M-Bus (EN 13757-4/-7, OMS): frames, security, decoding, stream
hygiene, liveness and receivers for the gateway."""

from .errors import (
    CleartextClaimsEncryptionError,
    CrcError,
    DuplicateTelegram,
    MacMismatchError,
    MissingKeyError,
    Reason,
    ReplayError,
    TruncatedFrameError,
    UnexpectedCleartextError,
    UnsupportedFrameError,
    WmbusFrameError,
    WmbusSecurityError,
    WrongKeyError,
)
from .guard import StreamGuard
from .liveness import LivenessChange, SilenceWatch, SilentMeter
from .pipeline import WmbusPipeline
from .records import BillingRegister, Record
from .security import MeterKey
from .telegram import Telegram, decode_frame, telegram_to_dict, telegram_to_json

__all__ = [
    "BillingRegister",
    "CleartextClaimsEncryptionError",
    "CrcError",
    "DuplicateTelegram",
    "LivenessChange",
    "MacMismatchError",
    "MeterKey",
    "MissingKeyError",
    "Reason",
    "Record",
    "ReplayError",
    "SilenceWatch",
    "SilentMeter",
    "StreamGuard",
    "Telegram",
    "TruncatedFrameError",
    "UnexpectedCleartextError",
    "UnsupportedFrameError",
    "WmbusFrameError",
    "WmbusPipeline",
    "WmbusSecurityError",
    "WrongKeyError",
    "decode_frame",
    "telegram_to_dict",
    "telegram_to_json",
]
