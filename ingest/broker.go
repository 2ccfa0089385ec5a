package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is the embedded Kafka-protocol broker (franz-go's kfake) that
// `serve` starts when KAFKA_BROKERS is empty, so a fresh install accepts
// records from any Kafka producer. It keeps its log in files under a data
// directory and reloads it on start; writes reach the disk at the
// operating system's pace (like Kafka's default flush policy), so a
// machine crash can lose the last records written, while a process crash
// does not. Records older than the retention are deleted (hourly). Anyone
// may produce to it; with BrokerConfig.Group set, only members presenting
// the group's secret join that group or write its offsets (guard.go).
type Broker struct {
	cluster    *kfake.Cluster
	stopReaper func()
}

// BrokerConfig configures the embedded broker.
type BrokerConfig struct {
	// Addr is host:port to listen on; port 0 picks one.
	Addr string
	// DataDir keeps the log across restarts; empty keeps it in memory.
	DataDir string
	// Topics are created at start with Partitions partitions each, and
	// keep Retention of records (default 7 days, Kafka's default).
	Topics     []string
	Partitions int
	Retention  time.Duration
	// Group is the ingesters' consumer group. When set, the broker
	// guards it (guard.go): only members presenting GroupSecret join it,
	// and no one else commits or deletes its offsets. Empty: no guard.
	Group       string
	GroupSecret string
	// Log receives the guard's warnings (nil: discard); Registerer its
	// metrics (nil: none).
	Log        *slog.Logger
	Registerer prometheus.Registerer
	// ReapAfter removes a consumer group member the broker has not heard
	// from for this long (reaper.go). Default 60 s, past any client's
	// session timeout.
	ReapAfter time.Duration
}

// StartBroker starts the embedded broker.
func StartBroker(cfg BrokerConfig) (*Broker, error) {
	host, portText, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka address %q: %w", cfg.Addr, err)
	}
	var port int
	if _, err := fmt.Sscan(portText, &port); err != nil {
		return nil, fmt.Errorf("embedded kafka address %q: bad port", cfg.Addr)
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 4
	}
	if cfg.Group != "" && len(cfg.GroupSecret) < 32 {
		return nil, fmt.Errorf("embedded kafka: guarding group %s needs a secret (LoadGroupSecret)", cfg.Group)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.ReapAfter <= 0 {
		cfg.ReapAfter = time.Minute
	}
	// The broker listens as it is made, before its guard can be
	// installed: connections wait at the gate until it is.
	gate := make(chan struct{})
	opts := []kfake.Opt{
		kfake.Ports(port),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			_, p, _ := net.SplitHostPort(address)
			ln, err := net.Listen(network, net.JoinHostPort(host, p))
			if err != nil {
				return nil, err
			}
			return &gatedListener{Listener: ln, gate: gate, closed: make(chan struct{})}, nil
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.SeedTopics(int32(cfg.Partitions), cfg.Topics...),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		close(gate)
		return nil, fmt.Errorf("embedded kafka on %s: %w", cfg.Addr, err)
	}
	b := &Broker{cluster: c}
	if cfg.Group != "" {
		installGroupGuard(c, cfg.Group, cfg.GroupSecret, cfg.Log, cfg.Registerer)
	}
	b.stopReaper = startReaper(c, cfg.ReapAfter, cfg.Log)
	close(gate)
	if err := b.setRetention(cfg); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// setRetention gives the seeded topics an explicit retention.ms: the
// broker deletes old records only from topics that set one.
func (b *Broker) setRetention(cfg BrokerConfig) error {
	if len(cfg.Topics) == 0 {
		return nil
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 7 * 24 * time.Hour
	}
	client := &kafka.Client{Addr: kafka.TCP(b.Addr()), Timeout: 10 * time.Second}
	req := &kafka.IncrementalAlterConfigsRequest{}
	for _, t := range cfg.Topics {
		req.Resources = append(req.Resources, kafka.IncrementalAlterConfigsRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: t,
			Configs: []kafka.IncrementalAlterConfigsRequestConfig{{
				Name: "retention.ms", Value: strconv.FormatInt(cfg.Retention.Milliseconds(), 10), ConfigOperation: kafka.ConfigOperationSet,
			}},
		})
	}
	resp, err := client.IncrementalAlterConfigs(context.Background(), req)
	if err != nil {
		return fmt.Errorf("embedded kafka: set retention: %w", err)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return fmt.Errorf("embedded kafka: set retention of %s: %w", r.ResourceName, r.Error)
		}
	}
	return nil
}

// gatedListener accepts no connection before its gate opens.
type gatedListener struct {
	net.Listener
	gate      <-chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *gatedListener) Accept() (net.Conn, error) {
	select {
	case <-l.gate:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	return l.Listener.Accept()
}

func (l *gatedListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// Addr is the address clients connect to.
func (b *Broker) Addr() string { return b.cluster.ListenAddrs()[0] }

// Close stops the broker, flushing its log.
func (b *Broker) Close() {
	b.stopReaper()
	b.cluster.Close()
}
