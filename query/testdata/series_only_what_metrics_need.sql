-- source: user_hourly
-- params: start end tz tenant user
SELECT
    toUnixTimestamp(toStartOfHour(bucket, {tz:String})) AS bucket_start,
    sum(requests) AS agg_requests,
    sum(errors_5xx) AS agg_5xx,
    sum(response_time_sum_us) AS agg_time_sum
FROM user_hourly
WHERE bucket >= {start:DateTime64(3, 'UTC')} AND bucket < {end:DateTime64(3, 'UTC')}
  AND tenant_id = {tenant:String}
  AND user_id = {user:String}
GROUP BY bucket_start
SETTINGS max_threads = 1

