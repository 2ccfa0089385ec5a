-- source: usage_daily
-- params: start end tz f_status_code
SELECT
    toUnixTimestamp(toDateTime(toStartOfMonth(bucket, {tz:String}), {tz:String})) AS bucket_start,
    user_id AS d_user_id,
    sum(requests) AS agg_requests,
    sum(errors_4xx) AS agg_4xx,
    sum(errors_5xx) AS agg_5xx,
    sum(response_time_sum_us) AS agg_time_sum,
    max(response_time_max_us) AS agg_time_max,
    sum(request_bytes) AS agg_request_bytes,
    sum(response_bytes) AS agg_response_bytes,
    uniqExact(tenant_id, user_id) AS agg_users
FROM usage_daily
WHERE bucket >= {start:DateTime64(3, 'UTC')} AND bucket < {end:DateTime64(3, 'UTC')}
  AND status_code IN {f_status_code:Array(UInt16)}
GROUP BY bucket_start, d_user_id

