-- What the ingester keeps beside the records.

-- Restoring a partition's duplicate-id window after a restart reads the
-- ids ingested in the last minutes; parts are written in ingestion order,
-- so a min/max index on ingested_at skips nearly everything else.
ALTER TABLE {{table "usage_events"}} {{onCluster}}
    ADD INDEX IF NOT EXISTS idx_ingested_at ingested_at TYPE minmax GRANULARITY 1;

ALTER TABLE {{table "feature_usage"}} {{onCluster}}
    ADD INDEX IF NOT EXISTS idx_ingested_at ingested_at TYPE minmax GRANULARITY 1;

-- One row per loaded batch: the offset range of a partition it covered and
-- what became of its messages. Written with the batch's deduplication
-- token, so a replayed batch leaves one row.
CREATE TABLE IF NOT EXISTS {{table "ingest_batches"}} {{onCluster}}
(
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    first_offset    Int64,
    last_offset     Int64,
    messages        UInt32,
    records         UInt32,
    features        UInt32,
    rejected        UInt32,
    duplicates      UInt32,
    bytes           UInt64,
    min_event_time  DateTime64(3, 'UTC'),
    max_event_time  DateTime64(3, 'UTC'),
    load_ms         UInt32,
    replay          UInt8,
    loaded_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{sharded "ingest_batches" "MergeTree"}}
PARTITION BY toYYYYMM(loaded_at)
ORDER BY (kafka_topic, kafka_partition, first_offset)
TTL toDateTime(loaded_at) + toIntervalDay(90)
SETTINGS {{dedupWindow}};

{{distributed "ingest_batches" "kafka_partition"}}

-- Rejected records (also sent to the dead-letter topic), for people to
-- look at: the reason, and the start of the record.
CREATE TABLE IF NOT EXISTS {{table "ingest_rejections"}} {{onCluster}}
(
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64,
    kafka_timestamp DateTime64(3, 'UTC'),
    reason          LowCardinality(String),
    field           LowCardinality(String),
    detail          String,
    size            UInt32,
    sample          String,
    rejected_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{sharded "ingest_rejections" "MergeTree"}}
PARTITION BY toYYYYMMDD(rejected_at)
ORDER BY (kafka_topic, kafka_partition, kafka_offset)
TTL toDateTime(rejected_at) + toIntervalDay(30)
SETTINGS {{dedupWindow}}, ttl_only_drop_parts = 1;

{{distributed "ingest_rejections" "kafka_partition"}}
