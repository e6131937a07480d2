-- Removal (issue 11). Tenants, users and accounts are marked removed, never deleted, so
-- challenges and the audit log keep naming what they were about. A removed record frees
-- its name for a new one; a removed user's Alexa user id and OAuth subject are forgotten
-- (so the person can be enrolled again) and their devices revoked; an unlinked account's
-- sealed role ARN and ExternalId are wiped.
ALTER TABLE tenants ADD COLUMN removed_at BIGINT;
ALTER TABLE users ADD COLUMN removed_at BIGINT;
ALTER TABLE aws_accounts ADD COLUMN removed_at BIGINT;

DROP INDEX tenants_name_unique;
CREATE UNIQUE INDEX tenants_name_unique ON tenants (lower(name)) WHERE removed_at IS NULL;
DROP INDEX users_tenant_name_unique;
CREATE UNIQUE INDEX users_tenant_name_unique ON users (tenant_id, lower(name))
    WHERE removed_at IS NULL;
DROP INDEX aws_accounts_tenant_name_unique;
CREATE UNIQUE INDEX aws_accounts_tenant_name_unique ON aws_accounts (tenant_id, lower(name))
    WHERE removed_at IS NULL;

