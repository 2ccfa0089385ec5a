// Package grafana holds the Grafana provisioning files and dashboards that
// read apimeter's ClickHouse tables, and the tests that run every
// dashboard query against the embedded engine.
package grafana
