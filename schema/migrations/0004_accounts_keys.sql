-- Accounts: which plan a user is on and the day its billing cycle starts.
-- Rows are versioned; the newest version of (tenant_id, user_id) wins and
-- a row with deleted = 1 removes the account. Read with FINAL.
CREATE TABLE IF NOT EXISTS {{table "accounts"}} {{onCluster}}
(
    tenant_id          LowCardinality(String),
    user_id            String,
    plan               LowCardinality(String),
    billing_anchor_day UInt8 DEFAULT 1,
    quota_mode         LowCardinality(String) DEFAULT 'hard',
    created_at         DateTime64(3, 'UTC'),
    updated_at         DateTime64(3, 'UTC'),
    version            UInt64,
    deleted            UInt8 DEFAULT 0
)
ENGINE = {{replicated "accounts" "ReplacingMergeTree" "version, deleted"}}
ORDER BY (tenant_id, user_id);

-- API keys. Only a SHA-256 of the key is kept (keys are random 256-bit
-- secrets, so a fast hash is enough); key_prefix is the first characters
-- shown back to people to tell keys apart. tenant_id '*' is every tenant.
CREATE TABLE IF NOT EXISTS {{table "api_keys"}} {{onCluster}}
(
    key_id       String,
    key_hash     String,
    key_prefix   String,
    tenant_id    LowCardinality(String),
    user_id      String,
    role         LowCardinality(String),
    name         String,
    created_at   DateTime64(3, 'UTC'),
    expires_at   Nullable(DateTime64(3, 'UTC')),
    revoked_at   Nullable(DateTime64(3, 'UTC')),
    last_used_at Nullable(DateTime64(3, 'UTC')),
    version      UInt64
)
ENGINE = {{replicated "api_keys" "ReplacingMergeTree" "version"}}
ORDER BY key_id;
