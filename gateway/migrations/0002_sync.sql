-- Cloud sync: the commands the cloud sent (each applied once, by its id),
-- and what those commands set for other parts of the gateway to read.

-- One row per authenticated command id. A command seen again gets this
-- row's result back, marked duplicate. `digest` is the SHA-256 of the signed
-- command text: the same id with other content is refused as a replay.
CREATE TABLE commands (
    command_id  TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT,
    result      TEXT NOT NULL DEFAULT '{}',
    issued_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX commands_expires ON commands(expires_at);

-- Tariff prices the cloud scheduled, each from its effective time on.
CREATE TABLE tariff_schedule (
    tariff_id    TEXT NOT NULL,
    effective_at TEXT NOT NULL,
    prices       TEXT NOT NULL,
    command_id   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (tariff_id, effective_at)
);

-- A unit forced on or off for maintenance, until a time or until set back
-- to auto (which deletes the row).
CREATE TABLE unit_overrides (
    unit_id    TEXT PRIMARY KEY,
    mode       TEXT NOT NULL CHECK (mode IN ('on', 'off')),
    until      TEXT,
    reason     TEXT NOT NULL,
    command_id TEXT NOT NULL,
    set_at     TEXT NOT NULL
);

-- Texts to show on a unit's display, for one account or one unit.
CREATE TABLE display_messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT,
    unit_id    TEXT,
    text       TEXT NOT NULL,
    until      TEXT,
    command_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
