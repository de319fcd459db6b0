-- Twilio status callbacks are recorded once: a replay of (CallSid, CallStatus, SequenceNumber)
-- changes nothing. Older rows get their sequence number from the stored payload; duplicates
-- recorded before this migration are kept but no longer count toward the unique key.
ALTER TABLE call_events ADD COLUMN sequence_number integer;
ALTER TABLE call_events ADD COLUMN replayed boolean NOT NULL DEFAULT false;
UPDATE call_events SET sequence_number = (payload->>'SequenceNumber')::integer
 WHERE kind = 'status' AND payload->>'SequenceNumber' ~ '^[0-9]{1,9}$';
UPDATE call_events e SET replayed = true
 WHERE e.kind = 'status' AND EXISTS (
   SELECT 1 FROM call_events o
    WHERE o.kind = 'status' AND o.call_sid IS NOT DISTINCT FROM e.call_sid
      AND o.status IS NOT DISTINCT FROM e.status
      AND COALESCE(o.sequence_number, -1) = COALESCE(e.sequence_number, -1)
      AND o.id < e.id);
CREATE UNIQUE INDEX call_events_status_once ON call_events
 (call_sid, status, COALESCE(sequence_number, -1)) WHERE kind = 'status' AND NOT replayed;
