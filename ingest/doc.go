// Package ingest turns usage records into rows: the record type, its
// columnar batches for bulk loading, and a generator of realistic records
// for tests, benchmarks and demos. The Kafka consumer, decoder, dead-letter
// handling and producer client build on these.
package ingest
