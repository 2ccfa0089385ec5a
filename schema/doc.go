// Package schema holds apimeter's ClickHouse DDL: versioned migrations in
// migrations/*.sql (text/template files rendered for one server or for a
// cluster), the ledger that records them, the retention setting of the raw
// tables, and the statements that rebuild rollups from raw records.
// SCHEMA.md documents the tables.
package schema
