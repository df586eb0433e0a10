-- The users the realtime `$connect` checks (`verify_user_active`): `id` is the token's
-- `sub`, and a connection is refused unless the user exists in the token's tenant and
-- is active.
CREATE TABLE users (
    id          text        PRIMARY KEY,
    tenant_id   bigint      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    role        text        NOT NULL DEFAULT 'viewer',
    active      boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_tenant_id_idx ON users (tenant_id);
