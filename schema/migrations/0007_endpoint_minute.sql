-- Per-minute endpoint totals for the last two days: what health checks
-- (the last five minutes) and minute-grained tenant-wide series read, at a
-- cost that does not grow with the data kept. Same measures as
-- endpoint_hourly.
CREATE TABLE IF NOT EXISTS {{table "endpoint_minute"}} {{onCluster}}
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
ENGINE = {{sharded "endpoint_minute" "AggregatingMergeTree"}}
PARTITION BY toYYYYMMDD(bucket)
ORDER BY (bucket, tenant_id, endpoint, method, status_class)
TTL bucket + toIntervalDay(2)
SETTINGS {{dedupWindow}}, ttl_only_drop_parts = 1;

{{distributed "endpoint_minute" "rand()"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "endpoint_minute_mv"}} {{onCluster}}
TO {{table "endpoint_minute"}} AS
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
FROM {{table "usage_events"}}
GROUP BY tenant_id, endpoint, method, status_class, bucket;
