"""Import pyMeterBus without letting it reconfigure the process's logging."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType


def import_meterbus() -> ModuleType:
    """Import and return `meterbus`, undoing its logging.basicConfig call.

    pyMeterBus 0.8 calls logging.basicConfig(level=INFO) at import time (in
    meterbus/serial.py), which adds a stderr handler to the root logger and
    would print every library line twice next to our structlog output.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return importlib.import_module("meterbus")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
