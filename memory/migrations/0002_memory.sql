-- Memory: people, tasks with history, extracted commitments, and embeddings for recall.

CREATE TABLE people (
    id         bigserial PRIMARY KEY,
    series_id  bigint NOT NULL REFERENCES series(id),
    name       text NOT NULL,
    phone      text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX people_series_name_idx ON people(series_id, lower(name));

CREATE TABLE tasks (
    id                 bigserial PRIMARY KEY,
    series_id          bigint NOT NULL REFERENCES series(id),
    owner_id           bigint REFERENCES people(id),
    owner              text,
    action             text NOT NULL,
    due                date,
    status             text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'cancelled')),
    source_call_id     uuid REFERENCES calls(id),
    source_seq         integer,
    meeting_created_id bigint REFERENCES meetings(id),
    meeting_updated_id bigint REFERENCES meetings(id),
    embedding          vector(384),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_series_status_idx ON tasks(series_id, status);

CREATE TABLE task_history (
    id          bigserial PRIMARY KEY,
    task_id     bigint NOT NULL REFERENCES tasks(id),
    change      text NOT NULL CHECK (change IN ('created', 'redated', 'restated', 'done', 'cancelled')),
    from_status text,
    to_status   text NOT NULL,
    from_due    date,
    to_due      date,
    quote       text NOT NULL,
    call_id     uuid REFERENCES calls(id),
    seq         integer,
    meeting_id  bigint REFERENCES meetings(id),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_history_task_idx ON task_history(task_id, id);

CREATE TABLE commitments (
    id          bigserial PRIMARY KEY,
    call_id     uuid NOT NULL REFERENCES calls(id),
    seq         integer NOT NULL,          -- the transcript segment that completed it
    ordinal     integer NOT NULL,          -- its place among that segment's commitments
    kind        text NOT NULL CHECK (kind IN ('commitment', 'status_done', 'cancel')),
    owner       text,
    action      text NOT NULL,
    due         date,
    quote       text NOT NULL,
    confidence  real NOT NULL,
    task_id     bigint REFERENCES tasks(id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_id, seq, ordinal)
);

CREATE TABLE memory_embeddings (
    id         bigserial PRIMARY KEY,
    series_id  bigint REFERENCES series(id),
    call_id    uuid REFERENCES calls(id),
    kind       text NOT NULL CHECK (kind IN ('segment', 'commitment', 'summary')),
    ref        text NOT NULL,               -- "call_id:seq[:ordinal]": unique per source
    text       text NOT NULL,
    embedding  vector(384) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, ref)
);
CREATE INDEX memory_embeddings_hnsw ON memory_embeddings USING hnsw (embedding vector_cosine_ops);
CREATE INDEX memory_embeddings_series_idx ON memory_embeddings(series_id, kind);
