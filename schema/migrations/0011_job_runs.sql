-- Background job runs (package scheduler): one row per run of a job, by
-- the replica that ran it — scheduled or started by hand, with its
-- attempts, outcome and last error. Kept 90 days.
CREATE TABLE IF NOT EXISTS {{table "job_runs"}} {{onCluster}}
(
    id          String,
    job         LowCardinality(String),
    instance    LowCardinality(String),
    trigger     LowCardinality(String),
    start       DateTime64(3, 'UTC'),
    duration_ms UInt64,
    attempts    UInt16,
    outcome     LowCardinality(String),
    error       String
)
ENGINE = {{replicated "job_runs" "MergeTree"}}
PARTITION BY toYYYYMM(start)
ORDER BY (job, start)
TTL toDateTime(start) + toIntervalDay(90);
