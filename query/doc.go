// Package query will plan and run apimeter's analytics against ClickHouse:
// choosing the daily rollup, the hourly rollup or raw records by
// granularity and range, bucketing in the caller's time zone, filling gaps,
// and streaming exports. Its SQL lives in .sql files beside the Go.
package query
