-- A consumption entry states the quantity it charges for: everything the
-- meter measured since its previous entry, including readings too small to
-- move the cost by a whole cent. quantity_booked is the meter's
-- quantity_total at its last entry.
ALTER TABLE meter_state ADD COLUMN quantity_booked TEXT NOT NULL DEFAULT '0';
ALTER TABLE meter_state ADD COLUMN value_booked TEXT;
UPDATE meter_state SET quantity_booked = quantity_total, value_booked = last_value;
