-- Held critical operations and what guards them.

-- Each user's TOTP key K_user (20 random bytes), sealed (purpose totp-key, subject the user).
ALTER TABLE users ADD COLUMN totp_key_sealed BYTEA;

-- A challenge: one held operation, its canonical summary and digest, and where it stands.
-- state: pending, approved, executed, failed, denied, cancelled, replaced, expired.
-- used_step is the TOTP time step of the code that approved it (single use).
CREATE TABLE challenges (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    account_id   TEXT NOT NULL REFERENCES aws_accounts (id),
    operation    TEXT NOT NULL,
    summary      TEXT NOT NULL,
    digest       TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    wrong_codes  BIGINT NOT NULL,
    used_step    BIGINT,
    closed_at    BIGINT
);
-- At most one pending challenge per user, enforced by the database (also across replicas).
CREATE UNIQUE INDEX challenges_one_pending_per_user ON challenges (user_id) WHERE state = 'pending';
CREATE INDEX challenges_by_state ON challenges (state, expires_at);

-- Wrong codes per user across challenges, sessions and devices; reset only by a right code.
CREATE TABLE user_failures (
    user_id       TEXT PRIMARY KEY REFERENCES users (id),
    failures      BIGINT NOT NULL,
    locked_until  BIGINT NOT NULL
);
