package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// EnsureTopic creates topic with partitions partitions when it is missing
// (a topic that exists is left as it is) and waits until every partition
// has a leader, so that writes do not fail right after.
func EnsureTopic(ctx context.Context, brokers []string, topic string, partitions int) error {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	return createTopics(ctx, client, []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: -1}})
}

// ensureTopics creates the record and dead-letter topics when missing.
func ensureTopics(ctx context.Context, client *kafka.Client, cfg Config) error {
	return createTopics(ctx, client, []kafka.TopicConfig{
		{Topic: cfg.Topic, NumPartitions: cfg.Partitions, ReplicationFactor: -1},
		{Topic: cfg.DeadLetterTopic, NumPartitions: 1, ReplicationFactor: -1},
	})
}

func createTopics(ctx context.Context, client *kafka.Client, topics []kafka.TopicConfig) error {
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: topics})
	if err != nil {
		return err
	}
	for topic, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	// A new topic's partitions get leaders a moment after it is created.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, t := range topics {
		for {
			err := topicReady(wctx, client, t.Topic)
			if err == nil {
				break
			}
			if wctx.Err() != nil {
				return fmt.Errorf("topic %s: %w", t.Topic, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// topicReady reports whether topic exists and every partition has a
// leader.
func topicReady(ctx context.Context, client *kafka.Client, topic string) error {
	resp, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	for _, t := range resp.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return fmt.Errorf("kafka topic %s: %w", topic, t.Error)
		}
		if len(t.Partitions) == 0 {
			return fmt.Errorf("kafka topic %s has no partitions yet", topic)
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return fmt.Errorf("kafka topic %s: partition %d has no leader yet", topic, p.ID)
			}
		}
		return nil
	}
	return fmt.Errorf("kafka topic %s does not exist yet", topic)
}
