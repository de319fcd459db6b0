-- What the bot was asked and what it answered, per call.
CREATE TABLE replies (
    id                 bigserial PRIMARY KEY,
    call_id            uuid NOT NULL REFERENCES calls(id),
    ordinal            integer NOT NULL,
    intent             text NOT NULL,
    question           text NOT NULL,
    answer             text NOT NULL,
    t_question_end_ms  integer NOT NULL,
    t_first_audio_ms   integer,
    audio_ms           integer NOT NULL DEFAULT 0,
    interrupted        boolean NOT NULL DEFAULT false,
    spoken_chars       integer,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_id, ordinal)
);
