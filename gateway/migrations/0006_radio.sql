-- Radio links: LoRa frame counters and the wireless M-Bus stream guard's
-- memory. (LoRa read receipts go to display_message_receipts.)

-- The last LoRa frame counter accepted from each unit (direction 0) and the
-- last one sent to it (direction 1), so a replayed frame is refused after a
-- restart too and no counter is used twice. drivers/lora/counters.py creates
-- the same table with IF NOT EXISTS for databases it opens on its own; both
-- statements are idempotent, so either may run first.
CREATE TABLE IF NOT EXISTS lora_counters(
    address   INTEGER NOT NULL,
    direction INTEGER NOT NULL CHECK (direction IN (0, 1)),
    counter   INTEGER NOT NULL CHECK (counter BETWEEN 0 AND 4294967295),
    PRIMARY KEY (address, direction)
) WITHOUT ROWID;

-- Per wireless M-Bus receiver and meter: what drivers.wmbus.StreamGuard knows
-- (last access number, AFL counter, digest and when it was heard), as the JSON
-- of one entry of StreamGuard.to_dict()["meters"]. Saved after every accepted
-- telegram, so a telegram recorded before a restart is still a replay after it.
CREATE TABLE wmbus_stream (
    bus_id   TEXT NOT NULL,
    meter_id TEXT NOT NULL,
    version  INTEGER NOT NULL,
    state    TEXT NOT NULL,
    saved_at TEXT NOT NULL,
    PRIMARY KEY (bus_id, meter_id)
);

