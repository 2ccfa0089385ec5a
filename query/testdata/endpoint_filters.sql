-- source: endpoint_daily
-- params: start end tz tenant f_method f_status_class
SELECT
    toUnixTimestamp(toDateTime(toMonday(bucket, {tz:String}), {tz:String})) AS bucket_start,
    endpoint AS d_endpoint,
    status_class AS d_status_class,
    sum(requests) AS agg_requests,
    sum(errors_4xx) AS agg_4xx,
    sum(errors_5xx) AS agg_5xx,
    sum(response_time_sum_us) AS agg_time_sum,
    max(response_time_max_us) AS agg_time_max,
    sum(request_bytes) AS agg_request_bytes,
    sum(response_bytes) AS agg_response_bytes,
    quantilesDDMerge(0.01, 0.5, 0.9, 0.95, 0.99)(latency_us) AS agg_latency
FROM endpoint_daily
WHERE bucket >= {start:DateTime64(3, 'UTC')} AND bucket < {end:DateTime64(3, 'UTC')}
  AND tenant_id = {tenant:String}
  AND method IN {f_method:Array(String)}
  AND status_class IN {f_status_class:Array(UInt8)}
GROUP BY bucket_start, d_endpoint, d_status_class

