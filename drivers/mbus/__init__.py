"""Wired M-Bus (EN 13757-2/3): frames, telegram decoding, and an asyncio master."""

from drivers.mbus.decode import Record, Telegram, decode_frame, telegram_to_json

__all__ = ["Record", "Telegram", "decode_frame", "telegram_to_json"]
