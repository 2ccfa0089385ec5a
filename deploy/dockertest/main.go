// Command dockertest starts a ClickHouse server in Docker with
// testcontainers, runs the command after "--" with CLICKHOUSE_TEST_URL
// pointing at it, and removes the server. Without a Docker engine it says
// so loudly and exits 0, so `make test-docker` never passes silently.
//
// It is a module of its own so the main module does not carry the Docker
// client's dependencies.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// image is the ClickHouse server the server-driver tests run against.
const image = "clickhouse/clickhouse-server:25.8"

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: dockertest -- command [args…]")
		os.Exit(2)
	}
	os.Exit(run(args))
}

func run(args []string) int {
	ctx := context.Background()
	if err := dockerAvailable(ctx); err != nil {
		banner := strings.Repeat("!", 72)
		fmt.Fprintf(os.Stderr, "%s\nSKIPPED: no Docker engine (%v).\nThe ClickHouse server-driver tests did NOT run. Set CLICKHOUSE_TEST_URL to a\nserver and run `make test` to run them without Docker.\n%s\n", banner, err, banner)
		return 0
	}
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        image,
			ExposedPorts: []string{"9000/tcp"},
			Env:          map[string]string{"CLICKHOUSE_USER": "apimeter", "CLICKHOUSE_PASSWORD": "apimeter", "CLICKHOUSE_DB": "apimeter"},
			WaitingFor:   wait.ForListeningPort("9000/tcp").WithStartupTimeout(2 * time.Minute),
		},
		Started: true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dockertest: start ClickHouse:", err)
		return 1
	}
	defer c.Terminate(ctx)
	host, err := c.Host(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dockertest:", err)
		return 1
	}
	port, err := c.MappedPort(ctx, "9000/tcp")
	if err != nil {
		fmt.Fprintln(os.Stderr, "dockertest:", err)
		return 1
	}
	url := fmt.Sprintf("clickhouse://apimeter:apimeter@%s:%s/apimeter", host, port.Port())
	fmt.Fprintf(os.Stderr, "dockertest: %s at %s\n", image, url)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "CLICKHOUSE_TEST_URL="+url)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if exit, ok := err.(*exec.ExitError); ok {
			return exit.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "dockertest:", err)
		return 1
	}
	return 0
}

func dockerAvailable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	_, err = cli.Ping(ctx, client.PingOptions{})
	return err
}
