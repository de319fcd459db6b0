-- The call path: series, meetings, calls, their events and transcript segments.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE series (
    id          bigserial PRIMARY KEY,
    key         text NOT NULL UNIQUE,          -- a name, or "dial-in number#meeting id"
    name        text,
    dial_in     text,
    meeting_ref text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE meetings (
    id           bigserial PRIMARY KEY,
    series_id    bigint NOT NULL REFERENCES series(id),
    title        text,
    meeting_date date NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meetings_series_idx ON meetings(series_id, meeting_date);

CREATE TABLE calls (
    id            uuid PRIMARY KEY,
    series_id     bigint REFERENCES series(id),
    meeting_id    bigint REFERENCES meetings(id),
    direction     text NOT NULL CHECK (direction IN ('inbound', 'outbound', 'stream')),
    status        text NOT NULL,
    call_sid      text UNIQUE,
    stream_sid    text,
    from_number   text,
    to_number     text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    ended_at      timestamptz,
    completed_at  timestamptz
);

CREATE TABLE call_events (
    id         bigserial PRIMARY KEY,
    call_id    uuid REFERENCES calls(id),
    call_sid   text,
    kind       text NOT NULL,
    status     text,
    payload    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX call_events_call_idx ON call_events(call_id);

CREATE TABLE transcript_segments (
    id          bigserial PRIMARY KEY,
    call_id     uuid NOT NULL REFERENCES calls(id),
    seq         integer NOT NULL,
    start_ms    integer NOT NULL,
    end_ms      integer NOT NULL,
    text        text NOT NULL,
    confidence  real,
    speaker     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_id, seq)
);
