-- Incidents raised by health monitoring or by hand, versioned like
-- accounts (the newest version of an id wins; read with FINAL).
CREATE TABLE IF NOT EXISTS {{table "incidents"}} {{onCluster}}
(
    id          String,
    tenant_id   LowCardinality(String),
    title       String,
    description String,
    severity    LowCardinality(String),
    status      LowCardinality(String),
    scope       LowCardinality(String),
    endpoint    String,
    dedup_key   String,
    started_at  DateTime64(3, 'UTC'),
    resolved_at Nullable(DateTime64(3, 'UTC')),
    updated_at  DateTime64(3, 'UTC'),
    version     UInt64
)
ENGINE = {{replicated "incidents" "ReplacingMergeTree" "version"}}
ORDER BY id;

-- The timeline of an incident: one row per update, never changed.
CREATE TABLE IF NOT EXISTS {{table "incident_updates"}} {{onCluster}}
(
    incident_id String,
    id          String,
    created_at  DateTime64(3, 'UTC'),
    status      LowCardinality(String),
    message     String,
    author      String,
    metrics     Map(LowCardinality(String), Float64)
)
ENGINE = {{replicated "incident_updates" "MergeTree"}}
ORDER BY (incident_id, created_at, id);

-- Alert notifications, one row per delivery attempt. dedup_key names the
-- condition (one condition sends one alert per cooldown); idempotency_key
-- travels in the message so receivers can drop repeats.
CREATE TABLE IF NOT EXISTS {{table "alert_notifications"}} {{onCluster}}
(
    dedup_key       String,
    idempotency_key String,
    alert_type      LowCardinality(String),
    severity        LowCardinality(String),
    channel         LowCardinality(String),
    tenant_id       LowCardinality(String),
    user_id         String,
    status          LowCardinality(String),
    attempt         UInt16,
    error           String,
    payload         String,
    created_at      DateTime64(3, 'UTC')
)
ENGINE = {{replicated "alert_notifications" "MergeTree"}}
PARTITION BY toYYYYMM(created_at)
ORDER BY (dedup_key, created_at);
