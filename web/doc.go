// Package web will hold the dashboard, built from pinned npm packages and
// embedded in the binary.
package web
