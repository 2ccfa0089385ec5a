-- source: usage_daily
-- params: start end tz f_status_code
SELECT
    toUnixTimestamp(toDateTime(toStartOfMonth(bucket, {tz:String}), {tz:String})) AS bucket_start,
    user_id AS d_user_id,
    sum(requests) AS requests,
    sum(errors_4xx) AS errors_4xx,
    sum(errors_5xx) AS errors_5xx,
    sum(response_time_sum_us) AS time_sum_us,
    max(response_time_max_us) AS time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes,
    uniqExact(user_id) AS users
FROM usage_daily
WHERE bucket >= {start:DateTime64(3, 'UTC')} AND bucket < {end:DateTime64(3, 'UTC')}
  AND status_code IN {f_status_code:Array(UInt16)}
GROUP BY bucket_start, d_user_id

