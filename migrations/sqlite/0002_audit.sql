-- The append-only, hash-chained audit log. Each record's hash covers its canonical encoding
-- and the previous record's hash; `voxgate audit verify` recomputes the chain.
CREATE TABLE audit_log (
    seq             BIGINT PRIMARY KEY,
    at              BIGINT NOT NULL,
    tenant_id       TEXT,
    user_id         TEXT,
    summary         TEXT NOT NULL,
    digest          TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    detail          TEXT NOT NULL,
    aws_request_id  TEXT,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq);
