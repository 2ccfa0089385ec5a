// Package events carries apimeter's events — api.rate_limit.exceeded,
// api.quota.warning and the others of the product contract — as
// CloudEvents 1.0 in JSON: to in-process subscribers and to the Kafka
// topic api-usage-events.
package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// Topic is the Kafka topic events go to.
const Topic = "api-usage-events"

// CloudEvent is an event in the CloudEvents 1.0 JSON format. TenantID
// and UserID are extension attributes.
type CloudEvent struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Time            time.Time `json:"time"`
	Subject         string    `json:"subject,omitempty"`
	DataContentType string    `json:"datacontenttype"`
	TenantID        string    `json:"tenantid,omitempty"`
	UserID          string    `json:"userid,omitempty"`
	Data            any       `json:"data"`
}

// Sink receives every published event (the Kafka topic).
type Sink interface {
	Send(e CloudEvent)
}

// Bus hands events to subscribers and a sink.
type Bus struct {
	source string
	mu     sync.RWMutex
	subs   map[int]func(CloudEvent)
	next   int
	sink   Sink
}

// NewBus is a bus whose events name source (e.g. "apimeter").
func NewBus(source string, sink Sink) *Bus {
	return &Bus{source: source, subs: map[int]func(CloudEvent){}, sink: sink}
}

// Subscribe calls f with every event published after it, in the
// publisher's goroutine (f must not block); cancel stops it.
func (b *Bus) Subscribe(f func(CloudEvent)) (cancel func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := b.next
	b.next++
	b.subs[id] = f
	return func() {
		b.mu.Lock()
		delete(b.subs, id)
		b.mu.Unlock()
	}
}

// Publish sends an event. id may be empty (a random one is made); a
// stable id lets receivers drop repeats of one occurrence.
func (b *Bus) Publish(id, typ string, at time.Time, tenant, user, subject string, data any) CloudEvent {
	if id == "" {
		var r [16]byte
		_, _ = rand.Read(r[:])
		id = hex.EncodeToString(r[:])
	}
	e := CloudEvent{SpecVersion: "1.0", ID: id, Source: b.source, Type: typ, Time: at.UTC(), Subject: subject,
		DataContentType: "application/json", TenantID: tenant, UserID: user, Data: data}
	b.mu.RLock()
	for _, f := range b.subs {
		f(e)
	}
	b.mu.RUnlock()
	if b.sink != nil {
		b.sink.Send(e)
	}
	return e
}

// KafkaSink writes events to Kafka without blocking the publisher: in
// structured mode (the whole CloudEvent as the value, content type
// application/cloudevents+json), keyed by tenant and user so one user's
// events stay in order.
type KafkaSink struct {
	w   *kafka.Writer
	log *slog.Logger
}

// NewKafkaSink writes to topic on brokers.
func NewKafkaSink(brokers []string, topic string, log *slog.Logger) *KafkaSink {
	s := &KafkaSink{log: log}
	s.w = &kafka.Writer{
		Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		Async: true, BatchTimeout: 10 * time.Millisecond, AllowAutoTopicCreation: true,
		Completion: func(msgs []kafka.Message, err error) {
			if err != nil {
				log.Warn("events not written to kafka", "topic", topic, "count", len(msgs), "err", err)
			}
		},
	}
	return s
}

// Send implements Sink.
func (s *KafkaSink) Send(e CloudEvent) {
	v, err := json.Marshal(e)
	if err != nil {
		s.log.Warn("event not encoded", "type", e.Type, "err", err)
		return
	}
	_ = s.w.WriteMessages(context.Background(), kafka.Message{
		Key: []byte(e.TenantID + "|" + e.UserID), Value: v,
		Headers: []kafka.Header{{Key: "content-type", Value: []byte("application/cloudevents+json")}},
	})
}

// Close flushes what is queued.
func (s *KafkaSink) Close() error { return s.w.Close() }
