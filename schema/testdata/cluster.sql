-- ledger
CREATE TABLE IF NOT EXISTS schema_migrations_local ON CLUSTER apimeter
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/schema_migrations_local', '{replica}')
ORDER BY version;

-- 0001_usage_events
-- Raw usage records, one row per metered API call.
--
-- Sorted for the question asked most: one tenant's (or one user's) calls
-- over a time range. Daily partitions let retention drop whole days
-- (ttl_only_drop_parts) instead of rewriting parts. The deduplication
-- window makes a replayed insert with the same token a no-op here and, with
-- deduplicate_blocks_in_dependent_materialized_views, in every rollup.
CREATE TABLE IF NOT EXISTS usage_events_local ON CLUSTER apimeter
(
    id               String,
    event_time       DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    ingested_at      DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    stored_at        DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    tenant_id        LowCardinality(String),
    user_id          String,
    api_key_id       String,
    endpoint         LowCardinality(String),
    method           LowCardinality(String),
    status_code      UInt16,
    response_time_us UInt64 CODEC(T64, ZSTD(1)),
    request_bytes    UInt64 CODEC(T64, ZSTD(1)),
    response_bytes   UInt64 CODEC(T64, ZSTD(1)),
    metadata         Map(LowCardinality(String), String),
    kafka_topic      LowCardinality(String),
    kafka_partition  Int32,
    kafka_offset     Int64
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/usage_events_local', '{replica}')
PARTITION BY toYYYYMMDD(event_time)
ORDER BY (tenant_id, user_id, event_time)
TTL toDateTime(event_time) + toIntervalDay(90)
SETTINGS replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS usage_events ON CLUSTER apimeter AS usage_events_local
ENGINE = Distributed(apimeter, currentDatabase(), usage_events_local, cityHash64(tenant_id, user_id));


-- 0002_feature_usage
-- Raw metered feature uses (records with type "feature") and their daily
-- totals per user and feature.
CREATE TABLE IF NOT EXISTS feature_usage_local ON CLUSTER apimeter
(
    id              String,
    event_time      DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    ingested_at     DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    stored_at       DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    tenant_id       LowCardinality(String),
    user_id         String,
    feature         LowCardinality(String),
    quantity        Float64,
    metadata        Map(LowCardinality(String), String),
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/feature_usage_local', '{replica}')
PARTITION BY toYYYYMMDD(event_time)
ORDER BY (tenant_id, user_id, feature, event_time)
TTL toDateTime(event_time) + toIntervalDay(90)
SETTINGS replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS feature_usage ON CLUSTER apimeter AS feature_usage_local
ENGINE = Distributed(apimeter, currentDatabase(), feature_usage_local, cityHash64(tenant_id, user_id));

CREATE TABLE IF NOT EXISTS feature_usage_daily_local ON CLUSTER apimeter
(
    tenant_id LowCardinality(String),
    user_id   String,
    feature   LowCardinality(String),
    bucket    DateTime('UTC'),
    events    SimpleAggregateFunction(sum, UInt64),
    quantity  SimpleAggregateFunction(sum, Float64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/feature_usage_daily_local', '{replica}')
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, user_id, bucket, feature)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS feature_usage_daily ON CLUSTER apimeter AS feature_usage_daily_local
ENGINE = Distributed(apimeter, currentDatabase(), feature_usage_daily_local, cityHash64(tenant_id, user_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS feature_usage_daily_mv_local ON CLUSTER apimeter
TO feature_usage_daily_local AS
SELECT
    tenant_id,
    user_id,
    feature,
    toStartOfDay(event_time) AS bucket,
    count() AS events,
    sum(quantity) AS quantity
FROM feature_usage_local
GROUP BY tenant_id, user_id, feature, bucket;


-- 0003_rollups
-- Rollups of usage_events, fed by materialized views on every insert.
--
-- Two families, split by question because the number of groups a block
-- builds sets the ingest rate (BENCHMARKS.md):
--   usage_{hourly,daily}     per tenant, user, endpoint, method, status code:
--                            counts and sums only, exact.
--   endpoint_{hourly,daily}  per tenant, endpoint, method, status class:
--                            the same sums plus a latency sketch
--                            (DDSketch, 1% relative error, deterministic and
--                            mergeable, so a rebuild gives the same numbers).
-- Buckets are UTC hours and days; a view only sees new inserts, so
-- backfills and changes use `apimeter rollups rebuild`.

CREATE TABLE IF NOT EXISTS usage_hourly_local ON CLUSTER apimeter
(
    tenant_id            LowCardinality(String),
    user_id              String,
    endpoint             LowCardinality(String),
    method               LowCardinality(String),
    status_code          UInt16,
    bucket               DateTime('UTC'),
    requests             SimpleAggregateFunction(sum, UInt64),
    errors_4xx           SimpleAggregateFunction(sum, UInt64),
    errors_5xx           SimpleAggregateFunction(sum, UInt64),
    response_time_sum_us SimpleAggregateFunction(sum, UInt64),
    response_time_max_us SimpleAggregateFunction(max, UInt64),
    request_bytes        SimpleAggregateFunction(sum, UInt64),
    response_bytes       SimpleAggregateFunction(sum, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/usage_hourly_local', '{replica}')
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, user_id, bucket, endpoint, method, status_code)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS usage_hourly ON CLUSTER apimeter AS usage_hourly_local
ENGINE = Distributed(apimeter, currentDatabase(), usage_hourly_local, cityHash64(tenant_id, user_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_hourly_mv_local ON CLUSTER apimeter
TO usage_hourly_local AS
SELECT
    tenant_id,
    user_id,
    endpoint,
    method,
    status_code,
    toStartOfHour(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes
FROM usage_events_local
GROUP BY tenant_id, user_id, endpoint, method, status_code, bucket;

CREATE TABLE IF NOT EXISTS usage_daily_local ON CLUSTER apimeter
(
    tenant_id            LowCardinality(String),
    user_id              String,
    endpoint             LowCardinality(String),
    method               LowCardinality(String),
    status_code          UInt16,
    bucket               DateTime('UTC'),
    requests             SimpleAggregateFunction(sum, UInt64),
    errors_4xx           SimpleAggregateFunction(sum, UInt64),
    errors_5xx           SimpleAggregateFunction(sum, UInt64),
    response_time_sum_us SimpleAggregateFunction(sum, UInt64),
    response_time_max_us SimpleAggregateFunction(max, UInt64),
    request_bytes        SimpleAggregateFunction(sum, UInt64),
    response_bytes       SimpleAggregateFunction(sum, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/usage_daily_local', '{replica}')
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, user_id, bucket, endpoint, method, status_code)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS usage_daily ON CLUSTER apimeter AS usage_daily_local
ENGINE = Distributed(apimeter, currentDatabase(), usage_daily_local, cityHash64(tenant_id, user_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_daily_mv_local ON CLUSTER apimeter
TO usage_daily_local AS
SELECT
    tenant_id,
    user_id,
    endpoint,
    method,
    status_code,
    toStartOfDay(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes
FROM usage_events_local
GROUP BY tenant_id, user_id, endpoint, method, status_code, bucket;

CREATE TABLE IF NOT EXISTS endpoint_hourly_local ON CLUSTER apimeter
(
    tenant_id            LowCardinality(String),
    endpoint             LowCardinality(String),
    method               LowCardinality(String),
    status_class         UInt8,
    bucket               DateTime('UTC'),
    requests             SimpleAggregateFunction(sum, UInt64),
    errors_4xx           SimpleAggregateFunction(sum, UInt64),
    errors_5xx           SimpleAggregateFunction(sum, UInt64),
    response_time_sum_us SimpleAggregateFunction(sum, UInt64),
    response_time_max_us SimpleAggregateFunction(max, UInt64),
    request_bytes        SimpleAggregateFunction(sum, UInt64),
    response_bytes       SimpleAggregateFunction(sum, UInt64),
    latency_us           AggregateFunction(quantilesDD(0.01, 0.5, 0.9, 0.95, 0.99), UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/endpoint_hourly_local', '{replica}')
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, bucket, endpoint, method, status_class)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS endpoint_hourly ON CLUSTER apimeter AS endpoint_hourly_local
ENGINE = Distributed(apimeter, currentDatabase(), endpoint_hourly_local, rand());

CREATE MATERIALIZED VIEW IF NOT EXISTS endpoint_hourly_mv_local ON CLUSTER apimeter
TO endpoint_hourly_local AS
SELECT
    tenant_id,
    endpoint,
    method,
    intDiv(status_code, 100) AS status_class,
    toStartOfHour(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes,
    quantilesDDState(0.01, 0.5, 0.9, 0.95, 0.99)(response_time_us) AS latency_us
FROM usage_events_local
GROUP BY tenant_id, endpoint, method, status_class, bucket;

CREATE TABLE IF NOT EXISTS endpoint_daily_local ON CLUSTER apimeter
(
    tenant_id            LowCardinality(String),
    endpoint             LowCardinality(String),
    method               LowCardinality(String),
    status_class         UInt8,
    bucket               DateTime('UTC'),
    requests             SimpleAggregateFunction(sum, UInt64),
    errors_4xx           SimpleAggregateFunction(sum, UInt64),
    errors_5xx           SimpleAggregateFunction(sum, UInt64),
    response_time_sum_us SimpleAggregateFunction(sum, UInt64),
    response_time_max_us SimpleAggregateFunction(max, UInt64),
    request_bytes        SimpleAggregateFunction(sum, UInt64),
    response_bytes       SimpleAggregateFunction(sum, UInt64),
    latency_us           AggregateFunction(quantilesDD(0.01, 0.5, 0.9, 0.95, 0.99), UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/endpoint_daily_local', '{replica}')
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, bucket, endpoint, method, status_class)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS endpoint_daily ON CLUSTER apimeter AS endpoint_daily_local
ENGINE = Distributed(apimeter, currentDatabase(), endpoint_daily_local, rand());

CREATE MATERIALIZED VIEW IF NOT EXISTS endpoint_daily_mv_local ON CLUSTER apimeter
TO endpoint_daily_local AS
SELECT
    tenant_id,
    endpoint,
    method,
    intDiv(status_code, 100) AS status_class,
    toStartOfDay(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes,
    quantilesDDState(0.01, 0.5, 0.9, 0.95, 0.99)(response_time_us) AS latency_us
FROM usage_events_local
GROUP BY tenant_id, endpoint, method, status_class, bucket;


-- 0004_accounts_keys
-- Accounts: which plan a user is on and the day its billing cycle starts.
-- Rows are versioned; the newest version of (tenant_id, user_id) wins and
-- a row with deleted = 1 removes the account. Read with FINAL.
CREATE TABLE IF NOT EXISTS accounts_local ON CLUSTER apimeter
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/accounts_local', '{replica}', version, deleted)
ORDER BY (tenant_id, user_id);

-- API keys. Only a SHA-256 of the key is kept (keys are random 256-bit
-- secrets, so a fast hash is enough); key_prefix is the first characters
-- shown back to people to tell keys apart. tenant_id '*' is every tenant.
CREATE TABLE IF NOT EXISTS api_keys_local ON CLUSTER apimeter
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/api_keys_local', '{replica}', version)
ORDER BY key_id;


-- 0005_incidents_alerts
-- Incidents raised by health monitoring or by hand, versioned like
-- accounts (the newest version of an id wins; read with FINAL).
CREATE TABLE IF NOT EXISTS incidents_local ON CLUSTER apimeter
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/incidents_local', '{replica}', version)
ORDER BY id;

-- The timeline of an incident: one row per update, never changed.
CREATE TABLE IF NOT EXISTS incident_updates_local ON CLUSTER apimeter
(
    incident_id String,
    id          String,
    created_at  DateTime64(3, 'UTC'),
    status      LowCardinality(String),
    message     String,
    author      String,
    metrics     Map(LowCardinality(String), Float64)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/incident_updates_local', '{replica}')
ORDER BY (incident_id, created_at, id);

-- Alert notifications, one row per delivery attempt. dedup_key names the
-- condition (one condition sends one alert per cooldown); idempotency_key
-- travels in the message so receivers can drop repeats.
CREATE TABLE IF NOT EXISTS alert_notifications_local ON CLUSTER apimeter
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
ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/alert_notifications_local', '{replica}')
PARTITION BY toYYYYMM(created_at)
ORDER BY (dedup_key, created_at);


-- 0006_ingest
-- What the ingester keeps beside the records.

-- Restoring a partition's duplicate-id window after a restart reads the
-- ids ingested in the last minutes; parts are written in ingestion order,
-- so a min/max index on ingested_at skips nearly everything else.
ALTER TABLE usage_events_local ON CLUSTER apimeter
    ADD INDEX IF NOT EXISTS idx_ingested_at ingested_at TYPE minmax GRANULARITY 1;

ALTER TABLE feature_usage_local ON CLUSTER apimeter
    ADD INDEX IF NOT EXISTS idx_ingested_at ingested_at TYPE minmax GRANULARITY 1;

-- One row per loaded batch: the offset range of a partition it covered and
-- what became of its messages. Written with the batch's deduplication
-- token, so a replayed batch leaves one row.
CREATE TABLE IF NOT EXISTS ingest_batches_local ON CLUSTER apimeter
(
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    first_offset    Int64,
    last_offset     Int64,
    messages        UInt32,
    records         UInt32,
    features        UInt32,
    rejected        UInt32,
    duplicates      UInt32,
    bytes           UInt64,
    min_event_time  DateTime64(3, 'UTC'),
    max_event_time  DateTime64(3, 'UTC'),
    load_ms         UInt32,
    replay          UInt8,
    loaded_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/ingest_batches_local', '{replica}')
PARTITION BY toYYYYMM(loaded_at)
ORDER BY (kafka_topic, kafka_partition, first_offset)
TTL toDateTime(loaded_at) + toIntervalDay(90)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS ingest_batches ON CLUSTER apimeter AS ingest_batches_local
ENGINE = Distributed(apimeter, currentDatabase(), ingest_batches_local, kafka_partition);

-- Rejected records (also sent to the dead-letter topic), for people to
-- look at: the reason, and the start of the record.
CREATE TABLE IF NOT EXISTS ingest_rejections_local ON CLUSTER apimeter
(
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64,
    kafka_timestamp DateTime64(3, 'UTC'),
    reason          LowCardinality(String),
    field           LowCardinality(String),
    detail          String,
    size            UInt32,
    sample          String,
    rejected_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/ingest_rejections_local', '{replica}')
PARTITION BY toYYYYMMDD(rejected_at)
ORDER BY (kafka_topic, kafka_partition, kafka_offset)
TTL toDateTime(rejected_at) + toIntervalDay(30)
SETTINGS replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS ingest_rejections ON CLUSTER apimeter AS ingest_rejections_local
ENGINE = Distributed(apimeter, currentDatabase(), ingest_rejections_local, kafka_partition);


-- 0007_endpoint_minute
-- Per-minute endpoint totals for the last two days: what health checks
-- (the last five minutes) and minute-grained tenant-wide series read, at a
-- cost that does not grow with the data kept. Same measures as
-- endpoint_hourly.
CREATE TABLE IF NOT EXISTS endpoint_minute_local ON CLUSTER apimeter
(
    tenant_id            LowCardinality(String),
    endpoint             LowCardinality(String),
    method               LowCardinality(String),
    status_class         UInt8,
    bucket               DateTime('UTC'),
    requests             SimpleAggregateFunction(sum, UInt64),
    errors_4xx           SimpleAggregateFunction(sum, UInt64),
    errors_5xx           SimpleAggregateFunction(sum, UInt64),
    response_time_sum_us SimpleAggregateFunction(sum, UInt64),
    response_time_max_us SimpleAggregateFunction(max, UInt64),
    request_bytes        SimpleAggregateFunction(sum, UInt64),
    response_bytes       SimpleAggregateFunction(sum, UInt64),
    latency_us           AggregateFunction(quantilesDD(0.01, 0.5, 0.9, 0.95, 0.99), UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/endpoint_minute_local', '{replica}')
PARTITION BY toYYYYMMDD(bucket)
ORDER BY (bucket, tenant_id, endpoint, method, status_class)
TTL bucket + toIntervalDay(2)
SETTINGS replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS endpoint_minute ON CLUSTER apimeter AS endpoint_minute_local
ENGINE = Distributed(apimeter, currentDatabase(), endpoint_minute_local, rand());

CREATE MATERIALIZED VIEW IF NOT EXISTS endpoint_minute_mv_local ON CLUSTER apimeter
TO endpoint_minute_local AS
SELECT
    tenant_id,
    endpoint,
    method,
    intDiv(status_code, 100) AS status_class,
    toStartOfMinute(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes,
    quantilesDDState(0.01, 0.5, 0.9, 0.95, 0.99)(response_time_us) AS latency_us
FROM usage_events_local
GROUP BY tenant_id, endpoint, method, status_class, bucket;


-- 0008_endpoint_minute_recent
-- endpoint_minute keeps two days (its TTL). Its view now skips records
-- older than that, so backfills and replays of old traffic no longer
-- build minute sketches that the TTL would drop: loading 30 days of
-- history costs a third of what it did. Records inserted between the
-- DROP and the CREATE (while this migration runs) miss the minute rollup
-- only; `apimeter rollups rebuild` restores it from raw records.
DROP VIEW IF EXISTS endpoint_minute_mv_local ON CLUSTER apimeter;

CREATE MATERIALIZED VIEW IF NOT EXISTS endpoint_minute_mv_local ON CLUSTER apimeter
TO endpoint_minute_local AS
SELECT
    tenant_id,
    endpoint,
    method,
    intDiv(status_code, 100) AS status_class,
    toStartOfMinute(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes,
    quantilesDDState(0.01, 0.5, 0.9, 0.95, 0.99)(response_time_us) AS latency_us
FROM usage_events_local
WHERE event_time >= now() - INTERVAL 2 DAY
GROUP BY tenant_id, endpoint, method, status_class, bucket;


-- 0009_user_rollups
-- Per-user rollups without endpoint, method or status: one row per user
-- and hour (or day). The usage_* rollups keep those dimensions and so hold
-- nearly a row per record when users call many endpoints; the questions
-- asked most — a user's series and totals, top users, quota use — need
-- none of them and read these instead (BENCHMARKS.md has the effect).
-- Exact sums, like usage_*. user_hourly is read a user at a time (a month
-- is 720 rows): granules of 1024 rows keep that read small.

CREATE TABLE IF NOT EXISTS user_hourly_local ON CLUSTER apimeter
(
    tenant_id            LowCardinality(String),
    user_id              String,
    bucket               DateTime('UTC'),
    requests             SimpleAggregateFunction(sum, UInt64),
    errors_4xx           SimpleAggregateFunction(sum, UInt64),
    errors_5xx           SimpleAggregateFunction(sum, UInt64),
    response_time_sum_us SimpleAggregateFunction(sum, UInt64),
    response_time_max_us SimpleAggregateFunction(max, UInt64),
    request_bytes        SimpleAggregateFunction(sum, UInt64),
    response_bytes       SimpleAggregateFunction(sum, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/user_hourly_local', '{replica}')
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, user_id, bucket)
SETTINGS replicated_deduplication_window = 10000, index_granularity = 1024;

CREATE TABLE IF NOT EXISTS user_hourly ON CLUSTER apimeter AS user_hourly_local
ENGINE = Distributed(apimeter, currentDatabase(), user_hourly_local, cityHash64(tenant_id, user_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS user_hourly_mv_local ON CLUSTER apimeter
TO user_hourly_local AS
SELECT
    tenant_id,
    user_id,
    toStartOfHour(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes
FROM usage_events_local
GROUP BY tenant_id, user_id, bucket;

CREATE TABLE IF NOT EXISTS user_daily_local ON CLUSTER apimeter
(
    tenant_id            LowCardinality(String),
    user_id              String,
    bucket               DateTime('UTC'),
    requests             SimpleAggregateFunction(sum, UInt64),
    errors_4xx           SimpleAggregateFunction(sum, UInt64),
    errors_5xx           SimpleAggregateFunction(sum, UInt64),
    response_time_sum_us SimpleAggregateFunction(sum, UInt64),
    response_time_max_us SimpleAggregateFunction(max, UInt64),
    request_bytes        SimpleAggregateFunction(sum, UInt64),
    response_bytes       SimpleAggregateFunction(sum, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/user_daily_local', '{replica}')
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, user_id, bucket)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS user_daily ON CLUSTER apimeter AS user_daily_local
ENGINE = Distributed(apimeter, currentDatabase(), user_daily_local, cityHash64(tenant_id, user_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS user_daily_mv_local ON CLUSTER apimeter
TO user_daily_local AS
SELECT
    tenant_id,
    user_id,
    toStartOfDay(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes
FROM usage_events_local
GROUP BY tenant_id, user_id, bucket;


-- 0010_quota_notices
-- Quota notices sent: one row per user, billing period and threshold
-- (80, 90, 95 and 100 percent). The limiter reads the highest level of a
-- period back after a restart so no notice goes out twice.
CREATE TABLE IF NOT EXISTS quota_notices_local ON CLUSTER apimeter
(
    tenant_id    LowCardinality(String),
    user_id      String,
    period_start DateTime('UTC'),
    level        UInt8,
    sent_at      DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/quota_notices_local', '{replica}', sent_at)
PARTITION BY toYYYYMM(period_start)
ORDER BY (tenant_id, user_id, period_start, level);


-- 0011_job_runs
-- Background job runs (package scheduler): one row per run of a job, by
-- the replica that ran it — scheduled or started by hand, with its
-- attempts, outcome and last error. Kept 90 days.
CREATE TABLE IF NOT EXISTS job_runs_local ON CLUSTER apimeter
(
    id          String,
    job         LowCardinality(String),
    instance    LowCardinality(String),
    trigger     LowCardinality(String),
    start       DateTime64(3, 'UTC'),
    duration_ms UInt64,
    attempts    UInt16,
    outcome     LowCardinality(String),
    error       String
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/job_runs_local', '{replica}')
PARTITION BY toYYYYMM(start)
ORDER BY (job, start)
TTL toDateTime(start) + toIntervalDay(90);


-- 0012_health_states
-- The health monitor's state per subject ("global", or an endpoint and
-- method): its status, since when, the degraded checks in a row and the
-- open incident. A restart reads it back, so no transition is reported
-- twice. The newest version of a subject wins; read with FINAL.
CREATE TABLE IF NOT EXISTS health_states_local ON CLUSTER apimeter
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/health_states_local', '{replica}', version)
ORDER BY subject;

-- Notifications are looked up by idempotency key (was it delivered?);
-- the table is sorted by dedup key, so a bloom filter skips the rest.
ALTER TABLE alert_notifications_local ON CLUSTER apimeter ADD INDEX IF NOT EXISTS idempotency_key_bf idempotency_key TYPE bloom_filter GRANULARITY 1;


-- 0013_cost_dimensions
-- Cost per call and custom dimensions.
--
-- cost: what an API call counts for against limits and quotas (1 unless
-- the record says otherwise; older rows read 1). usage_hourly and
-- usage_daily sum it, so quotas and bills read weighted usage; their
-- older rows read cost = requests. Their views are replaced to sum it:
-- records inserted between a DROP and its CREATE (while this migration
-- runs) miss that rollup; rollup-verify finds the day and rebuilds it.
--
-- dimensions: the declared custom dimensions of a record's metadata,
-- folded at ingest (values past a tenant's cap are __other__, values not
-- of the declared type __invalid__). dimension_hourly keeps one row per
-- tenant, dimension, user, hour and value, so a series grouped or
-- filtered by one dimension reads a rollup instead of raw records.

ALTER TABLE usage_events_local ON CLUSTER apimeter
    ADD COLUMN IF NOT EXISTS cost UInt32 DEFAULT 1 AFTER response_bytes,
    ADD COLUMN IF NOT EXISTS dimensions Map(LowCardinality(String), String) AFTER metadata;

ALTER TABLE usage_events ON CLUSTER apimeter ADD COLUMN IF NOT EXISTS cost UInt32 DEFAULT 1 AFTER response_bytes, ADD COLUMN IF NOT EXISTS dimensions Map(LowCardinality(String), String) AFTER metadata;

ALTER TABLE usage_hourly_local ON CLUSTER apimeter
    ADD COLUMN IF NOT EXISTS cost SimpleAggregateFunction(sum, UInt64) DEFAULT requests;

ALTER TABLE usage_hourly ON CLUSTER apimeter ADD COLUMN IF NOT EXISTS cost SimpleAggregateFunction(sum, UInt64) DEFAULT requests;

ALTER TABLE usage_daily_local ON CLUSTER apimeter
    ADD COLUMN IF NOT EXISTS cost SimpleAggregateFunction(sum, UInt64) DEFAULT requests;

ALTER TABLE usage_daily ON CLUSTER apimeter ADD COLUMN IF NOT EXISTS cost SimpleAggregateFunction(sum, UInt64) DEFAULT requests;

DROP VIEW IF EXISTS usage_hourly_mv_local ON CLUSTER apimeter;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_hourly_mv_local ON CLUSTER apimeter
TO usage_hourly_local AS
SELECT
    tenant_id,
    user_id,
    endpoint,
    method,
    status_code,
    toStartOfHour(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes,
    sum(cost) AS cost
FROM usage_events_local
GROUP BY tenant_id, user_id, endpoint, method, status_code, bucket;

DROP VIEW IF EXISTS usage_daily_mv_local ON CLUSTER apimeter;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_daily_mv_local ON CLUSTER apimeter
TO usage_daily_local AS
SELECT
    tenant_id,
    user_id,
    endpoint,
    method,
    status_code,
    toStartOfDay(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes,
    sum(cost) AS cost
FROM usage_events_local
GROUP BY tenant_id, user_id, endpoint, method, status_code, bucket;

CREATE TABLE IF NOT EXISTS dimension_hourly_local ON CLUSTER apimeter
(
    tenant_id            LowCardinality(String),
    dimension            LowCardinality(String),
    user_id              String,
    bucket               DateTime('UTC'),
    value                String,
    requests             SimpleAggregateFunction(sum, UInt64),
    errors_4xx           SimpleAggregateFunction(sum, UInt64),
    errors_5xx           SimpleAggregateFunction(sum, UInt64),
    response_time_sum_us SimpleAggregateFunction(sum, UInt64),
    response_time_max_us SimpleAggregateFunction(max, UInt64),
    request_bytes        SimpleAggregateFunction(sum, UInt64),
    response_bytes       SimpleAggregateFunction(sum, UInt64),
    cost                 SimpleAggregateFunction(sum, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/dimension_hourly_local', '{replica}')
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, dimension, user_id, bucket, value)
SETTINGS replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS dimension_hourly ON CLUSTER apimeter AS dimension_hourly_local
ENGINE = Distributed(apimeter, currentDatabase(), dimension_hourly_local, cityHash64(tenant_id, user_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS dimension_hourly_mv_local ON CLUSTER apimeter
TO dimension_hourly_local AS
SELECT
    tenant_id,
    dimension,
    user_id,
    toStartOfHour(event_time) AS bucket,
    value,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes,
    sum(cost) AS cost
FROM usage_events_local
ARRAY JOIN mapKeys(dimensions) AS dimension, mapValues(dimensions) AS value
GROUP BY tenant_id, dimension, user_id, bucket, value;


-- 0014_ingest_duplicates
-- Producer retries the ingester dropped: one row per record it did not
-- store because another record with the same id was accepted within the
-- retry window, named by the range (batch) that dropped it. Written with
-- the range's deduplication token before its records, so a replay of a
-- range that may be partly stored finds which of its records the first
-- load dropped and drops the same ones (DESIGN.md, "Producer retries").
-- Kept 30 days, like rejections: longer than an unfinished range waits.
CREATE TABLE IF NOT EXISTS ingest_duplicates_local ON CLUSTER apimeter
(
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    first_offset    Int64,
    last_offset     Int64,
    kafka_offset    Int64,
    id              String,
    dropped_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/ingest_duplicates_local', '{replica}')
PARTITION BY toYYYYMMDD(dropped_at)
ORDER BY (kafka_topic, kafka_partition, first_offset, kafka_offset)
TTL toDateTime(dropped_at) + toIntervalDay(30)
SETTINGS replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS ingest_duplicates ON CLUSTER apimeter AS ingest_duplicates_local
ENGINE = Distributed(apimeter, currentDatabase(), ingest_duplicates_local, kafka_partition);

