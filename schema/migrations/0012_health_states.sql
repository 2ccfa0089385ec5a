-- The health monitor's state per subject ("global", or an endpoint and
-- method): its status, since when, the degraded checks in a row and the
-- open incident. A restart reads it back, so no transition is reported
-- twice. The newest version of a subject wins; read with FINAL.
CREATE TABLE IF NOT EXISTS {{table "health_states"}} {{onCluster}}
(
    subject         String,
    scope           LowCardinality(String),
    endpoint        String,
    method          LowCardinality(String),
    status          LowCardinality(String),
    since           DateTime64(3, 'UTC'),
    degraded_checks UInt32,
    incident_id     String,
    error_rate      Float64,
    avg_response_ms Float64,
    requests        UInt64,
    version         UInt64
)
ENGINE = {{replicated "health_states" "ReplacingMergeTree" "version"}}
ORDER BY subject;

-- Notifications are looked up by idempotency key (was it delivered?);
-- the table is sorted by dedup key, so a bloom filter skips the rest.
ALTER TABLE {{table "alert_notifications"}} {{onCluster}} ADD INDEX IF NOT EXISTS idempotency_key_bf idempotency_key TYPE bloom_filter GRANULARITY 1;
