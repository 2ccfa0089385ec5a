-- The ids the partitions assigned to an ingester stored within the retry
-- window, with their positions: what it must remember to drop producer
-- retries of records already stored, on whichever of its partitions they
-- come. A partition keeps at most {limit} ids, so only that many of its
-- newest are read. idx_ingested_at prunes the scan.
SELECT id, kafka_partition, kafka_offset, ts
FROM
(
    SELECT id, kafka_partition, kafka_offset, ts
    FROM
    (
        SELECT id, kafka_partition, kafka_offset, toUnixTimestamp64Milli(ingested_at) AS ts
        FROM usage_events
        WHERE kafka_topic = {topic:String}
          AND kafka_partition IN {partitions:Array(Int32)}
          AND ingested_at >= {since:DateTime64(3, 'UTC')}
        UNION ALL
        SELECT id, kafka_partition, kafka_offset, toUnixTimestamp64Milli(ingested_at) AS ts
        FROM feature_usage
        WHERE kafka_topic = {topic:String}
          AND kafka_partition IN {partitions:Array(Int32)}
          AND ingested_at >= {since:DateTime64(3, 'UTC')}
    )
    ORDER BY ts DESC
    LIMIT {limit:UInt64} BY kafka_partition
)
ORDER BY ts
