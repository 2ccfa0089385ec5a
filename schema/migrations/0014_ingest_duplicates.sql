-- Producer retries the ingester dropped: one row per record it did not
-- store because another record with the same id was accepted within the
-- retry window, named by the range (batch) that dropped it. Written with
-- the range's deduplication token before its records, so a replay of a
-- range that may be partly stored finds which of its records the first
-- load dropped and drops the same ones (DESIGN.md, "Producer retries").
-- Kept 30 days, like rejections: longer than an unfinished range waits.
CREATE TABLE IF NOT EXISTS {{table "ingest_duplicates"}} {{onCluster}}
(
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    first_offset    Int64,
    last_offset     Int64,
    kafka_offset    Int64,
    id              String,
    dropped_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{sharded "ingest_duplicates" "MergeTree"}}
PARTITION BY toYYYYMMDD(dropped_at)
ORDER BY (kafka_topic, kafka_partition, first_offset, kafka_offset)
TTL toDateTime(dropped_at) + toIntervalDay(30)
SETTINGS {{dedupWindow}}, ttl_only_drop_parts = 1;

{{distributed "ingest_duplicates" "kafka_partition"}}
