-- Rebuilds feature_usage_daily for [from, to) from feature_usage; from and
-- to are whole UTC days. Mirrors the SELECT of feature_usage_daily_mv
-- (0002_feature_usage.sql).
DELETE FROM {{table "feature_usage_daily"}} {{onCluster}}
WHERE bucket >= {from:DateTime64(3, 'UTC')} AND bucket < {to:DateTime64(3, 'UTC')};

INSERT INTO feature_usage_daily
SELECT
    tenant_id,
    user_id,
    feature,
    toStartOfDay(event_time) AS bucket,
    count() AS events,
    sum(quantity) AS quantity
FROM feature_usage
WHERE event_time >= {from:DateTime64(3, 'UTC')} AND event_time < {to:DateTime64(3, 'UTC')}
GROUP BY tenant_id, user_id, feature, bucket
SETTINGS insert_deduplicate = 0;
