"""Device links: bytes and physical units in, unit commands out; never money."""
