-- A cut-off supply comes back only once the balance is this much above the
-- cut-off limit, so that a top-up of a few cents does not switch a contactor
-- on and off again within seconds.
ALTER TABLE credit_settings ADD COLUMN reconnect_margin_minor INTEGER NOT NULL DEFAULT 0;
