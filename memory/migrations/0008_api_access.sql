-- Who may use the REST API: opaque bearer tokens, stored as SHA-256 digests (the token itself
-- is shown once, when it is made), and an audit log of who read or deleted what.
CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL,
    token_hash   text NOT NULL UNIQUE,      -- hex SHA-256 of the whole token
    prefix       text NOT NULL,             -- its first characters, to tell tokens apart
    scopes       text[] NOT NULL,
    series       text[],                    -- NULL: every series
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,                  -- "token:NAME#ID", "jwt:SUBJECT", "retention", ...
    action  text NOT NULL,                  -- read, delete, purge, token.create, token.revoke
    target  text NOT NULL,                  -- "call:UUID", "series:KEY", "token:ID"
    client  text                            -- the client's address, when over HTTP
);
CREATE INDEX audit_log_at_idx ON audit_log(at);
