-- Tenants, their users, and the AWS accounts they linked.
-- Times are Unix seconds (BIGINT) so both backends store them alike.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX tenants_name_unique ON tenants (lower(name));

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    name           TEXT NOT NULL,
    alexa_user_id  TEXT UNIQUE,
    oauth_subject  TEXT UNIQUE,
    created_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_tenant_name_unique ON users (tenant_id, lower(name));

-- Role ARN and ExternalId are sealed (KMS envelope or local key, bound to the tenant by the
-- encryption context). external_id_digest is SHA-256 of the (256-bit random) ExternalId: it
-- enforces uniqueness without revealing anything.
CREATE TABLE aws_accounts (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    name                TEXT NOT NULL,
    region              TEXT NOT NULL,
    role_arn_sealed     BYTEA NOT NULL,
    external_id_sealed  BYTEA NOT NULL,
    external_id_digest  TEXT NOT NULL UNIQUE,
    created_at          BIGINT NOT NULL
);
CREATE UNIQUE INDEX aws_accounts_tenant_name_unique ON aws_accounts (tenant_id, lower(name));
