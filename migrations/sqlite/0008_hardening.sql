-- Hardening (issue 8).

-- Audit records name the challenge they are about and who acted (an Alexa session, a
-- companion device, the operator, or voxgate itself). `format` says how the record's hash
-- was made: 2 for records written before these columns existed, 3 (which covers them) after.
ALTER TABLE audit_log ADD COLUMN challenge_id TEXT;
ALTER TABLE audit_log ADD COLUMN actor TEXT;
ALTER TABLE audit_log ADD COLUMN format BIGINT NOT NULL DEFAULT 2;
CREATE INDEX audit_log_challenge ON audit_log (challenge_id, seq);

-- The chain's head, in one row: an append takes it (a row lock on PostgreSQL, the write
-- lock on SQLite) in the same transaction as the state change it records, so appends line
-- up without retries. Only a convenience: `audit verify` reads the records themselves.
CREATE TABLE audit_head (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
SELECT 1,
       COALESCE(MAX(seq), 0),
       COALESCE((SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1),
                '0000000000000000000000000000000000000000000000000000000000000000')
FROM audit_log;

-- Stored operations carry a format version: the bare EC2 instance operations written so far
-- become version 1 of the envelope.
UPDATE challenges
SET operation = '{"format":1,"kind":"ec2-instance","operation":' || operation || '}'
WHERE operation NOT LIKE '{"format":%';

-- A new pairing code for a user voids the older unused ones.
ALTER TABLE pairing_codes ADD COLUMN voided_at BIGINT;
CREATE INDEX pairing_codes_user ON pairing_codes (user_id);
