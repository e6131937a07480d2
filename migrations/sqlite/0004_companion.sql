-- Companion app pairing: one-time pairing codes and device tokens, both kept only as
-- SHA-256 hashes (the token has 256 random bits, the code is short-lived and single use).
CREATE TABLE pairing_codes (
    code_hash   TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
