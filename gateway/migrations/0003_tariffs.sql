-- Tariffs: each account's consumption per medium and local month (what
-- inclining blocks need to know was already billed), and a counter that
-- tells the tariff engine the cloud's tariff schedule changed.

-- Quantity in the medium's canonical unit (kWh, m3, min), exact decimal
-- text, added to in the billing transaction of the reading it came from.
-- `month` is the site's local calendar month, 'YYYY-MM'.
CREATE TABLE tariff_usage (
    account_id TEXT NOT NULL,
    medium     TEXT NOT NULL,
    month      TEXT NOT NULL,
    quantity   TEXT NOT NULL DEFAULT '0',
    PRIMARY KEY (account_id, medium, month)
);

-- One row whose `n` grows with every change to tariff_schedule, so the
-- engine rereads the schedule only when it changed.
CREATE TABLE tariff_schedule_changes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO tariff_schedule_changes (id, n) VALUES (1, 0);

CREATE TRIGGER tariff_schedule_inserted AFTER INSERT ON tariff_schedule
BEGIN
    UPDATE tariff_schedule_changes SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER tariff_schedule_updated AFTER UPDATE ON tariff_schedule
BEGIN
    UPDATE tariff_schedule_changes SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER tariff_schedule_deleted AFTER DELETE ON tariff_schedule
BEGIN
    UPDATE tariff_schedule_changes SET n = n + 1 WHERE id = 1;
END;
