-- Rebuilds usage_daily for [from, to) from usage_events; from and to are
-- whole UTC days. Mirrors the SELECT of usage_daily_mv (0013_cost_dimensions.sql): the
-- rebuild test checks both give the same rows.
DELETE FROM {{table "usage_daily"}} {{onCluster}}
WHERE bucket >= {from:DateTime64(3, 'UTC')} AND bucket < {to:DateTime64(3, 'UTC')};

INSERT INTO usage_daily
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
FROM usage_events
WHERE event_time >= {from:DateTime64(3, 'UTC')} AND event_time < {to:DateTime64(3, 'UTC')}
GROUP BY tenant_id, user_id, endpoint, method, status_code, bucket
SETTINGS insert_deduplicate = 0;
