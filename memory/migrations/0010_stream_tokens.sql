-- Stream tokens are single-use: the nonce of each token that opened a stream, claimed in the
-- same transaction that attaches the stream to its call. Rows are kept past their expiry only
-- as long as it takes to purge them (a used token is refused anyway once expired).
CREATE TABLE stream_token_uses (
    nonce      text PRIMARY KEY,
    call_id    uuid NOT NULL REFERENCES calls(id),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stream_token_uses_expiry_idx ON stream_token_uses(expires_at);
