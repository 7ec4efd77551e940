-- Credit rules: maximum balance, emergency credit, the water lifeline and
-- warnings per account; friendly hours and clock trust for the site; the
-- loans lent as emergency credit; which warnings have fired; and the
-- notifications waiting to reach residents.

ALTER TABLE accounts ADD COLUMN max_balance_minor INTEGER;
ALTER TABLE accounts ADD COLUMN emergency_minor INTEGER;
ALTER TABLE accounts ADD COLUMN emergency_automatic INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN emergency_available_minor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN lifeline_litres TEXT;
-- The account's warning thresholds as JSON (gateway.config.credit.Warnings).
ALTER TABLE accounts ADD COLUMN warning_rules TEXT;

-- One row: the site's friendly hours (JSON of gateway.config.credit.
-- FriendlyHours), its time zone, and how much debt beyond the credit line is
-- tolerated while the clock is not synchronised.
CREATE TABLE credit_settings (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    timezone            TEXT NOT NULL,
    friendly_hours      TEXT,
    unsynced_floor_minor INTEGER NOT NULL,
    updated_at          TEXT NOT NULL
);

-- Emergency credit lent: one row per loan, repaid from the next top-ups.
-- `id` is the ledger entry id of the loan.
CREATE TABLE emergency_loans (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    amount_minor  INTEGER NOT NULL,
    repaid_minor  INTEGER NOT NULL DEFAULT 0,
    how           TEXT NOT NULL CHECK (how IN ('request', 'automatic')),
    taken_at      TEXT NOT NULL,
    repaid_at     TEXT
);
CREATE INDEX emergency_loans_open ON emergency_loans(account_id)
    WHERE repaid_at IS NULL;

-- Per account and threshold: whether the warning has fired and waits for
-- the account to recover past the hysteresis before it may fire again.
CREATE TABLE warning_state (
    account_id TEXT NOT NULL,
    warning    TEXT NOT NULL,
    fired      INTEGER NOT NULL DEFAULT 0,
    times      INTEGER NOT NULL DEFAULT 0,
    changed_at TEXT NOT NULL,
    PRIMARY KEY (account_id, warning)
);

-- Messages for residents' own channels (e-mail, SMS, messengers), sent by
-- apprise outside the event loop. The id is derived from the warning that
-- caused it, so a message is queued once however often the rule runs.
CREATE TABLE notifications (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    sent_at     TEXT,
    gave_up_at  TEXT,
    last_error  TEXT
);
CREATE INDEX notifications_pending ON notifications(created_at)
    WHERE sent_at IS NULL AND gave_up_at IS NULL;

-- The lifeline counts water drawn since local midnight from the readings.
CREATE INDEX readings_meter_time ON readings(meter_id, taken_at);
