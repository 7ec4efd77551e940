-- Budgets, tenancy changes, laundry bookings, display-message receipts.
-- Amounts are whole minor units; times are ISO 8601 UTC text.

-- Each account's budget rule as the configuration last set it. Kept in the
-- database so that functions that only hold a connection (the actuators
-- asking whether a medium's sub-budget is spent) can judge periods.
CREATE TABLE budget_rules (
    account_id          TEXT PRIMARY KEY REFERENCES accounts(id),
    period              TEXT NOT NULL CHECK (period IN ('month', 'year')),
    amount_minor        INTEGER NOT NULL,
    unused              TEXT NOT NULL CHECK (unused IN ('rollover', 'forfeit')),
    rollover_cap_minor  INTEGER,
    moved_in            TEXT,
    timezone            TEXT NOT NULL,
    media_caps          TEXT NOT NULL DEFAULT '{}',
    updated_at          TEXT NOT NULL
);

-- One row per account and budget period once it was granted. `available`
-- is the grant plus what rolled over into it; `closed_at` is set when the
-- period ended and its unused part was rolled over or forfeited.
CREATE TABLE budget_periods (
    account_id       TEXT NOT NULL REFERENCES accounts(id),
    period_start     TEXT NOT NULL,
    period_end       TEXT NOT NULL,
    granted_minor    INTEGER NOT NULL,
    carried_in_minor INTEGER NOT NULL DEFAULT 0,
    rolled_over_minor INTEGER,
    forfeited_minor  INTEGER,
    granted_entry    TEXT,
    closed_at        TEXT,
    PRIMARY KEY (account_id, period_start)
);

-- What an account looked like when its resident moved out: the last
-- reading of each of its meters and its balance (debt stays with it).
CREATE TABLE tenancy_snapshots (
    account_id    TEXT PRIMARY KEY REFERENCES accounts(id),
    closed_at     TEXT NOT NULL,
    clock_synced  INTEGER NOT NULL,
    balance_minor INTEGER NOT NULL,
    currency      TEXT NOT NULL,
    readings      TEXT NOT NULL
);

-- Which account each dispensing unit serves and what it is, as configured.
CREATE TABLE unit_accounts (
    unit_id    TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    kind       TEXT NOT NULL
);

-- Washing machines and dryers, with their laundry rules from the config.
CREATE TABLE laundry_machines (
    unit_id           TEXT PRIMARY KEY,
    appliance         TEXT NOT NULL,
    billing           TEXT NOT NULL CHECK (billing IN ('cycle', 'energy', 'time')),
    price_minor       INTEGER NOT NULL,
    price_per         TEXT NOT NULL,
    hold_minor        INTEGER NOT NULL,
    no_show_minutes   INTEGER NOT NULL,
    no_show_fee_minor INTEGER NOT NULL,
    max_slot_minutes  INTEGER NOT NULL
);

-- One row per booking. A booking in state 'booked' or 'running' holds
-- hold_minor of the account's funds; the hold is not a ledger entry.
CREATE TABLE laundry_bookings (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id   TEXT NOT NULL UNIQUE,
    unit_id      TEXT NOT NULL,
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    slot_start   TEXT NOT NULL,
    slot_end     TEXT NOT NULL,
    hold_minor   INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    state        TEXT NOT NULL
        CHECK (state IN ('booked', 'running', 'done', 'cancelled', 'no_show')),
    source       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    started_at   TEXT,
    ended_at     TEXT,
    charge_entry TEXT,
    detail       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX laundry_bookings_unit ON laundry_bookings(unit_id, slot_start);
CREATE INDEX laundry_bookings_open ON laundry_bookings(account_id)
    WHERE state IN ('booked', 'running');

-- A unit showed a display message and its resident read it.
CREATE TABLE display_message_receipts (
    message_id   INTEGER NOT NULL REFERENCES display_messages(id),
    unit_id      TEXT NOT NULL,
    read_at      TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    clock_synced INTEGER NOT NULL,
    PRIMARY KEY (message_id, unit_id)
);

-- Message ids 1 to 255 are the built-in texts of the Modbus unit's display
-- (docs/modbus.md); texts from the administrator or the cloud start at 256
-- so both fit the one display-message register without clashing.
UPDATE sqlite_sequence SET seq = MAX(seq, 255) WHERE name = 'display_messages';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'display_messages', 255
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'display_messages');
