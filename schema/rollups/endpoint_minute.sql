-- Rebuilds endpoint_minute for [from, to) from usage_events; from and to are
-- whole UTC days. Mirrors the SELECT of endpoint_minute_mv (0007_endpoint_minute.sql): the
-- rebuild test checks both give the same rows.
DELETE FROM {{table "endpoint_minute"}} {{onCluster}}
WHERE bucket >= {from:DateTime64(3, 'UTC')} AND bucket < {to:DateTime64(3, 'UTC')};

INSERT INTO endpoint_minute
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
FROM usage_events
WHERE event_time >= {from:DateTime64(3, 'UTC')} AND event_time < {to:DateTime64(3, 'UTC')}
GROUP BY tenant_id, endpoint, method, status_class, bucket
SETTINGS insert_deduplicate = 0;
