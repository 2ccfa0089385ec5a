// Command apimeter is the single binary: `serve` runs the product,
// `migrate` and `rollups rebuild` manage the ClickHouse schema.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `apimeter — API usage metering and analytics

Usage:
  apimeter serve                     run the HTTP API on the configured store
  apimeter migrate [flags]           apply schema migrations (see --help)
  apimeter rollups rebuild [flags]   recompute rollups from raw records
  apimeter generate [flags]          load generated demo traffic into the store
  apimeter loadgen [flags]           send synthetic traffic to Kafka at a target rate
  apimeter keys create|list|revoke   manage API keys through a running server
  apimeter accounts set|get|list|delete
                                     manage users' plans and billing days through a running server
  apimeter bench load [flags]        measure bulk-load rates
  apimeter bench query [flags]       measure the analytics routes and exports
  apimeter bench slow-exports [flags] interactive latency while slow clients download exports
  apimeter bench decide [flags]       the decision API's latency and decisions a second (--redis URL for Redis)
  apimeter version                   print the version

Configuration comes from the environment; README.md lists every variable.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var exit exitCode
	switch {
	case err == nil:
	case errors.As(err, &exit):
		os.Exit(int(exit))
	default:
		fmt.Fprintln(os.Stderr, "apimeter:", err)
		os.Exit(1)
	}
}

// exitCode ends the process with a status and no further message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitCode(2)
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "migrate":
		return migrate(ctx, args[1:], stdout, stderr)
	case "rollups":
		if len(args) < 2 || args[1] != "rebuild" {
			fmt.Fprint(stderr, "usage: apimeter rollups rebuild --from T --to T [--force]\n")
			return exitCode(2)
		}
		return rebuildRollups(ctx, args[2:], stdout, stderr)
	case "generate":
		return generate(ctx, args[1:], stdout, stderr)
	case "loadgen":
		return loadgen(ctx, args[1:], stdout, stderr)
	case "keys":
		return keysCmd(ctx, args[1:], stdout, stderr)
	case "accounts":
		return accountsCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		switch {
		case len(args) >= 2 && args[1] == "load":
			return benchLoad(ctx, args[2:], stdout, stderr)
		case len(args) >= 2 && args[1] == "query":
			return benchQuery(ctx, args[2:], stdout, stderr)
		case len(args) >= 2 && args[1] == "slow-exports":
			return benchSlowExports(ctx, args[2:], stdout, stderr)
		case len(args) >= 2 && args[1] == "decide":
			return benchDecide(ctx, args[2:], stdout, stderr)
		}
		fmt.Fprint(stderr, "usage: apimeter bench load|query|slow-exports|decide [flags]\n")
		return exitCode(2)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "apimeter", version)
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "apimeter: unknown command %q\n\n%s", args[0], usage)
	return exitCode(2)
}

func newLogger(level slog.Leveler, format string, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
