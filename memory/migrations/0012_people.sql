-- Speakers into people (issue 15): who a segment's voice is, voiceprints per series, callers'
-- numbers. A person deleted takes their voiceprint with them; their segments and tasks stay
-- (the meeting's record), no longer linked to them.
ALTER TABLE transcript_segments ADD COLUMN person text;
ALTER TABLE transcript_segments ADD COLUMN person_id bigint REFERENCES people(id) ON DELETE SET NULL;
CREATE INDEX transcript_segments_person_idx ON transcript_segments(person_id) WHERE person_id IS NOT NULL;

ALTER TABLE tasks DROP CONSTRAINT tasks_owner_id_fkey;
ALTER TABLE tasks ADD CONSTRAINT tasks_owner_id_fkey
    FOREIGN KEY (owner_id) REFERENCES people(id) ON DELETE SET NULL;
CREATE INDEX tasks_owner_idx ON tasks(owner_id) WHERE owner_id IS NOT NULL;

-- One person per number in a series (a caller's number keys their record).
CREATE UNIQUE INDEX people_series_phone_idx ON people(series_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX people_phone_idx ON people(phone) WHERE phone IS NOT NULL;

CREATE TABLE voiceprints (
    person_id  bigint PRIMARY KEY REFERENCES people(id) ON DELETE CASCADE,
    embedding  vector NOT NULL,     -- the mean voice (L2-normed), domain/voice_encoder.py
    secs       real NOT NULL,       -- how much speech it was learned from (capped)
    calls      integer NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);
