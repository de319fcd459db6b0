-- A first-person promise made before its speaker was named keeps the voice label that said it,
-- so it takes the person's name when the label gets one later in the call.
ALTER TABLE commitments ADD COLUMN speaker text;
