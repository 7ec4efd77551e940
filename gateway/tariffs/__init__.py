"""Tariffs: consumption over an interval to an exact cost, with versions,
time-of-use bands, inclining blocks, standing charges and cycle prices."""

from gateway.tariffs.book import TariffBook
from gateway.tariffs.pricing import Charge, Line, TariffError

__all__ = ["Charge", "Line", "TariffBook", "TariffError"]
