-- The core schema: accounts, the ledger, readings, decisions, alarms, units,
-- and the uplink outbox. Amounts are whole minor units; meter values are
-- exact decimal text; times are ISO 8601 UTC with a clock_synced flag.

CREATE TABLE accounts (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    currency          TEXT NOT NULL,
    tariff_id         TEXT,
    credit_line_minor INTEGER NOT NULL DEFAULT 0,
    low_balance_minor INTEGER NOT NULL DEFAULT 0,
    contact           TEXT,
    -- Digest of the account's section in the YAML when it was last applied:
    -- a changed section is the installer's intent and overrides the cloud.
    config_digest     TEXT,
    created_at        TEXT NOT NULL,
    closed_at         TEXT
);

-- Every change of money is one row here. `id` is the idempotency key: the
-- same id offered twice is applied once. A positive amount credits the
-- account, a negative one debits it.
CREATE TABLE ledger_entries (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    kind         TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    source       TEXT NOT NULL,
    ref          TEXT,
    meter_id     TEXT,
    medium       TEXT,
    quantity     TEXT,
    unit         TEXT,
    booked_at    TEXT NOT NULL,
    clock_synced INTEGER NOT NULL,
    detail       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX ledger_entries_account ON ledger_entries(account_id, seq);
CREATE INDEX ledger_entries_booked ON ledger_entries(booked_at);

-- A cache of sum(amount_minor) per account, kept in the entry's transaction.
CREATE TABLE balances (
    account_id    TEXT PRIMARY KEY REFERENCES accounts(id),
    balance_minor INTEGER NOT NULL DEFAULT 0,
    last_seq      INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT 'ok',
    state_since   TEXT
);

-- Raw history of every reading, with what integrity made of it.
CREATE TABLE readings (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    meter_id     TEXT NOT NULL,
    value        TEXT NOT NULL,
    unit         TEXT NOT NULL,
    taken_at     TEXT NOT NULL,
    clock_synced INTEGER NOT NULL,
    verdict      TEXT NOT NULL,
    delta        TEXT,
    source       TEXT NOT NULL,
    raw          TEXT
);
CREATE INDEX readings_meter ON readings(meter_id, id);

-- Per meter: the last accepted register value, and the exact cost accrued
-- against what has been debited so far (sub-cent remainders carry over).
CREATE TABLE meter_state (
    meter_id        TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL,
    medium          TEXT NOT NULL,
    last_value      TEXT,
    last_unit       TEXT,
    last_taken_at   TEXT,
    quantity_total  TEXT NOT NULL DEFAULT '0',
    cost_accrued    TEXT NOT NULL DEFAULT '0',
    billed_minor    INTEGER NOT NULL DEFAULT 0,
    suspect_value   TEXT,
    suspect_count   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE decisions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    TEXT NOT NULL,
    state         TEXT NOT NULL,
    previous      TEXT NOT NULL,
    reason        TEXT NOT NULL,
    balance_minor INTEGER NOT NULL,
    decided_at    TEXT NOT NULL,
    clock_synced  INTEGER NOT NULL
);

CREATE TABLE alarms (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    message    TEXT NOT NULL,
    raised_at  TEXT NOT NULL,
    cleared_at TEXT,
    detail     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX alarms_open ON alarms(subject, kind) WHERE cleared_at IS NULL;

CREATE TABLE unit_state (
    unit_id         TEXT PRIMARY KEY,
    desired_on      INTEGER,
    reported_on     INTEGER,
    tamper          INTEGER NOT NULL DEFAULT 0,
    manual_override INTEGER NOT NULL DEFAULT 0,
    allowance       TEXT,
    updated_at      TEXT,
    failures        INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE device_health (
    device_id   TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    failures    INTEGER NOT NULL DEFAULT 0,
    last_ok_at  TEXT,
    last_error  TEXT,
    updated_at  TEXT NOT NULL
);

-- Uplink messages, written in the transaction that produced them and deleted
-- only when the cloud acknowledges them. seq is the gateway's persisted
-- monotonic sequence number.
CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    priority   INTEGER NOT NULL,
    payload    TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    clock_synced INTEGER NOT NULL
);
CREATE INDEX outbox_order ON outbox(priority, seq);
