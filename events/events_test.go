package events

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/ingest"
)

func TestBusToSubscribersAndKafka(t *testing.T) {
	br, err := ingest.StartBroker(ingest.BrokerConfig{Addr: "127.0.0.1:0", Topics: []string{Topic}, Partitions: 1})
	require.NoError(t, err)
	defer br.Close()
	sink := NewKafkaSink([]string{br.Addr()}, Topic, slog.Default())
	bus := NewBus("apimeter", sink)
	var got []CloudEvent
	cancel := bus.Subscribe(func(e CloudEvent) { got = append(got, e) })
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	sent := bus.Publish("quota:acme:u1:20261101:80", "api.quota.warning", at, "acme", "u1", "u1", map[string]any{"threshold": 80})
	cancel()
	bus.Publish("", "api.rate_limit.exceeded", at, "acme", "u2", "", map[string]any{})
	require.NoError(t, sink.Close())
	require.Len(t, got, 1, "a cancelled subscriber gets nothing more")
	require.Equal(t, sent, got[0])

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{br.Addr()}, Topic: Topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	var types []string
	for range 2 {
		m, err := r.ReadMessage(ctx)
		require.NoError(t, err)
		var e map[string]any
		require.NoError(t, json.Unmarshal(m.Value, &e))
		require.Equal(t, "1.0", e["specversion"])
		require.Equal(t, "apimeter", e["source"])
		require.NotEmpty(t, e["id"])
		require.Equal(t, "application/cloudevents+json", string(m.Headers[0].Value))
		types = append(types, e["type"].(string))
		if e["type"] == "api.quota.warning" {
			require.Equal(t, "quota:acme:u1:20261101:80", e["id"])
			require.Equal(t, "2026-11-27T10:00:00Z", e["time"])
			require.Equal(t, "acme", e["tenantid"])
			require.EqualValues(t, 80, e["data"].(map[string]any)["threshold"])
		}
	}
	require.ElementsMatch(t, []string{"api.quota.warning", "api.rate_limit.exceeded"}, types)
}
