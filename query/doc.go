// Package query plans and runs apimeter's analytics against ClickHouse:
// it reads the daily rollup, the hourly rollup, the minute rollup or raw
// records — the cheapest that answers exactly for the granularity, range,
// time zone, dimensions and metrics asked — cuts buckets in the caller's
// IANA time zone (days of 23 or 25 hours across DST changes), fills gaps
// (counts 0, rates and latencies NaN: nothing measured), and streams
// exports. Its SQL is in sql/*.sql.
package query
