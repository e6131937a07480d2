-- voxgate's own secrets, sealed like every other (e.g. the audit chain key).
CREATE TABLE service_secrets (
    name    TEXT PRIMARY KEY,
    sealed  BLOB NOT NULL
);
