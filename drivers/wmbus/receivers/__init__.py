"""Wireless M-Bus receivers behind one interface: IMST iM871A and Amber
AMB8465 USB sticks, and hex lines from a file, pipe or TCP socket."""

from .amber import AmberReceiver
from .base import RawTelegram, Receiver, ReceiverSilent
from .im871a import Im871aReceiver
from .lines import LineReceiver, parse_line

__all__ = [
    "AmberReceiver",
    "Im871aReceiver",
    "LineReceiver",
    "RawTelegram",
    "Receiver",
    "ReceiverSilent",
    "parse_line",
]
