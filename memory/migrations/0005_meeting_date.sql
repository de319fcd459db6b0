-- A call's meeting date is decided once, when the call is created (the date it names, or its
-- start instant in the series' time zone), and every later step reads it from here.
ALTER TABLE calls ADD COLUMN meeting_date date;
ALTER TABLE calls ADD COLUMN time_zone text;
UPDATE calls c SET meeting_date = m.meeting_date FROM meetings m WHERE m.id = c.meeting_id;
