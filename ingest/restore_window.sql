-- The ids a partition stored before an offset, within the retry window:
-- what a consumer taking over the partition must remember to drop producer
-- retries of records already stored. idx_ingested_at prunes the scan.
SELECT id, toUnixTimestamp64Milli(ingested_at) AS ts
FROM usage_events
WHERE kafka_topic = {topic:String}
  AND kafka_partition = {partition:Int32}
  AND kafka_offset < {before:Int64}
  AND ingested_at >= {since:DateTime64(3, 'UTC')}
UNION ALL
SELECT id, toUnixTimestamp64Milli(ingested_at) AS ts
FROM feature_usage
WHERE kafka_topic = {topic:String}
  AND kafka_partition = {partition:Int32}
  AND kafka_offset < {before:Int64}
  AND ingested_at >= {since:DateTime64(3, 'UTC')}
ORDER BY ts
