-- source: user_hourly
-- params: start end tz tenant user
SELECT
    toUnixTimestamp(toStartOfDay(bucket, {tz:String})) AS bucket_start,
    sum(requests) AS agg_requests,
    sum(errors_4xx) AS agg_4xx,
    sum(errors_5xx) AS agg_5xx,
    sum(response_time_sum_us) AS agg_time_sum,
    max(response_time_max_us) AS agg_time_max,
    sum(request_bytes) AS agg_request_bytes,
    sum(response_bytes) AS agg_response_bytes
FROM user_hourly
WHERE bucket >= {start:DateTime64(3, 'UTC')} AND bucket < {end:DateTime64(3, 'UTC')}
  AND tenant_id = {tenant:String}
  AND user_id = {user:String}
GROUP BY bucket_start
SETTINGS max_threads = 1

