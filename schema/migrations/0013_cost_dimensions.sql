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

ALTER TABLE {{table "usage_events"}} {{onCluster}}
    ADD COLUMN IF NOT EXISTS cost UInt32 DEFAULT 1 AFTER response_bytes,
    ADD COLUMN IF NOT EXISTS dimensions Map(LowCardinality(String), String) AFTER metadata;
{{alterDistributed "usage_events" "ADD COLUMN IF NOT EXISTS cost UInt32 DEFAULT 1 AFTER response_bytes, ADD COLUMN IF NOT EXISTS dimensions Map(LowCardinality(String), String) AFTER metadata"}}

ALTER TABLE {{table "usage_hourly"}} {{onCluster}}
    ADD COLUMN IF NOT EXISTS cost SimpleAggregateFunction(sum, UInt64) DEFAULT requests;
{{alterDistributed "usage_hourly" "ADD COLUMN IF NOT EXISTS cost SimpleAggregateFunction(sum, UInt64) DEFAULT requests"}}

ALTER TABLE {{table "usage_daily"}} {{onCluster}}
    ADD COLUMN IF NOT EXISTS cost SimpleAggregateFunction(sum, UInt64) DEFAULT requests;
{{alterDistributed "usage_daily" "ADD COLUMN IF NOT EXISTS cost SimpleAggregateFunction(sum, UInt64) DEFAULT requests"}}

DROP VIEW IF EXISTS {{table "usage_hourly_mv"}} {{onCluster}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "usage_hourly_mv"}} {{onCluster}}
TO {{table "usage_hourly"}} AS
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
FROM {{table "usage_events"}}
GROUP BY tenant_id, user_id, endpoint, method, status_code, bucket;

DROP VIEW IF EXISTS {{table "usage_daily_mv"}} {{onCluster}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "usage_daily_mv"}} {{onCluster}}
TO {{table "usage_daily"}} AS
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
FROM {{table "usage_events"}}
GROUP BY tenant_id, user_id, endpoint, method, status_code, bucket;

CREATE TABLE IF NOT EXISTS {{table "dimension_hourly"}} {{onCluster}}
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
ENGINE = {{sharded "dimension_hourly" "AggregatingMergeTree"}}
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, dimension, user_id, bucket, value)
SETTINGS {{dedupWindow}};

{{distributed "dimension_hourly" "cityHash64(tenant_id, user_id)"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "dimension_hourly_mv"}} {{onCluster}}
TO {{table "dimension_hourly"}} AS
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
FROM {{table "usage_events"}}
ARRAY JOIN mapKeys(dimensions) AS dimension, mapValues(dimensions) AS value
GROUP BY tenant_id, dimension, user_id, bucket, value;
