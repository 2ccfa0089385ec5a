-- source: endpoint_minute
-- params: start end tz tenant
SELECT
    toUnixTimestamp(toStartOfMinute(bucket)) AS bucket_start,
    sum(requests) AS requests,
    sum(errors_4xx) AS errors_4xx,
    sum(errors_5xx) AS errors_5xx,
    sum(response_time_sum_us) AS time_sum_us,
    max(response_time_max_us) AS time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes
FROM endpoint_minute
WHERE bucket >= {start:DateTime64(3, 'UTC')} AND bucket < {end:DateTime64(3, 'UTC')}
  AND tenant_id = {tenant:String}
GROUP BY bucket_start

