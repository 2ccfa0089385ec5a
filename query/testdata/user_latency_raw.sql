-- source: usage_events
-- params: start end tz tenant user
SELECT
    toUnixTimestamp(toStartOfHour(event_time, {tz:String})) AS bucket_start,
    count() AS agg_requests,
    countIf(status_code >= 400 AND status_code < 500) AS agg_4xx,
    countIf(status_code >= 500) AS agg_5xx,
    sum(response_time_us) AS agg_time_sum,
    max(response_time_us) AS agg_time_max,
    sum(request_bytes) AS agg_request_bytes,
    sum(response_bytes) AS agg_response_bytes,
    quantilesDD(0.01, 0.5, 0.9, 0.95, 0.99)(response_time_us) AS agg_latency
FROM usage_events
WHERE event_time >= {start:DateTime64(3, 'UTC')} AND event_time < {end:DateTime64(3, 'UTC')}
  AND tenant_id = {tenant:String}
  AND user_id = {user:String}
GROUP BY bucket_start

