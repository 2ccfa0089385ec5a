package ingest

import (
	"slices"
	"strconv"

	"github.com/apimeter/apimeter/store"
)

// Record types.
const (
	TypeAPICall = "api_call"
	TypeFeature = "feature"
)

// Record is one usage record as stored: an API call, or a metered use of a
// feature (Type "feature": Feature and Quantity instead of the HTTP fields).
type Record struct {
	ID             string
	Type           string
	EventTimeMs    int64 // Unix milliseconds
	IngestedAtMs   int64 // when the ingester read it, Unix milliseconds
	TenantID       string
	UserID         string
	APIKeyID       string
	Endpoint       string
	Method         string
	StatusCode     uint16
	ResponseTimeUs uint64
	RequestBytes   uint64
	ResponseBytes  uint64
	// Cost is what an API call counts for against limits and quotas: 1
	// unless the record says otherwise.
	Cost uint32
	// DecisionID names the limiter decision that counted the call, when
	// one did (the record's decisionId). It decides whether the call is in
	// Batch.Calls and is not stored.
	DecisionID string
	Metadata   map[string]string
	// Dimensions are the declared custom dimensions of Metadata, folded
	// (package dims).
	Dimensions map[string]string
	Feature    string
	Quantity   float64
	Topic      string
	Partition  int32
	Offset     int64
}

// UsageColumns accumulates API-call records by column for usage_events.
type UsageColumns struct {
	id, tenant, user, key, endpoint, method, topic []string
	eventTime, ingestedAt, offset                  []int64
	status                                         []uint16
	rt, reqBytes, respBytes                        []uint64
	cost                                           []uint32
	meta, dims                                     []map[string]string
	partition                                      []int32
}

// Append adds one record.
func (c *UsageColumns) Append(r *Record) {
	c.id = append(c.id, r.ID)
	c.eventTime = append(c.eventTime, r.EventTimeMs)
	c.ingestedAt = append(c.ingestedAt, r.IngestedAtMs)
	c.tenant = append(c.tenant, r.TenantID)
	c.user = append(c.user, r.UserID)
	c.key = append(c.key, r.APIKeyID)
	c.endpoint = append(c.endpoint, r.Endpoint)
	c.method = append(c.method, r.Method)
	c.status = append(c.status, r.StatusCode)
	c.rt = append(c.rt, r.ResponseTimeUs)
	c.reqBytes = append(c.reqBytes, r.RequestBytes)
	c.respBytes = append(c.respBytes, r.ResponseBytes)
	c.cost = append(c.cost, r.Cost)
	c.meta = append(c.meta, r.Metadata)
	c.dims = append(c.dims, r.Dimensions)
	c.topic = append(c.topic, r.Topic)
	c.partition = append(c.partition, r.Partition)
	c.offset = append(c.offset, r.Offset)
}

// Len is the number of records held.
func (c *UsageColumns) Len() int { return len(c.id) }

// Grow makes room for n more records without reallocating.
func (c *UsageColumns) Grow(n int) {
	c.id, c.tenant, c.user, c.key = slices.Grow(c.id, n), slices.Grow(c.tenant, n), slices.Grow(c.user, n), slices.Grow(c.key, n)
	c.endpoint, c.method, c.topic = slices.Grow(c.endpoint, n), slices.Grow(c.method, n), slices.Grow(c.topic, n)
	c.eventTime, c.ingestedAt, c.offset = slices.Grow(c.eventTime, n), slices.Grow(c.ingestedAt, n), slices.Grow(c.offset, n)
	c.status, c.rt = slices.Grow(c.status, n), slices.Grow(c.rt, n)
	c.reqBytes, c.respBytes = slices.Grow(c.reqBytes, n), slices.Grow(c.respBytes, n)
	c.meta, c.partition = slices.Grow(c.meta, n), slices.Grow(c.partition, n)
	c.cost, c.dims = slices.Grow(c.cost, n), slices.Grow(c.dims, n)
}

// Reset empties the columns, keeping their memory.
func (c *UsageColumns) Reset() {
	c.id, c.tenant, c.user, c.key = c.id[:0], c.tenant[:0], c.user[:0], c.key[:0]
	c.endpoint, c.method, c.topic = c.endpoint[:0], c.method[:0], c.topic[:0]
	c.eventTime, c.ingestedAt, c.offset = c.eventTime[:0], c.ingestedAt[:0], c.offset[:0]
	c.status, c.rt, c.reqBytes, c.respBytes = c.status[:0], c.rt[:0], c.reqBytes[:0], c.respBytes[:0]
	clear(c.meta)
	clear(c.dims)
	c.meta, c.partition = c.meta[:0], c.partition[:0]
	c.cost, c.dims = c.cost[:0], c.dims[:0]
}

// Block is the columns as a block for usage_events. It shares the
// columns' memory: load it before appending again.
func (c *UsageColumns) Block() *store.Block {
	return store.NewBlock().
		Add("id", "String", c.id).
		Add("event_time", "DateTime64(3, 'UTC')", c.eventTime).
		Add("ingested_at", "DateTime64(3, 'UTC')", c.ingestedAt).
		Add("tenant_id", "LowCardinality(String)", c.tenant).
		Add("user_id", "String", c.user).
		Add("api_key_id", "String", c.key).
		Add("endpoint", "LowCardinality(String)", c.endpoint).
		Add("method", "LowCardinality(String)", c.method).
		Add("status_code", "UInt16", c.status).
		Add("response_time_us", "UInt64", c.rt).
		Add("request_bytes", "UInt64", c.reqBytes).
		Add("response_bytes", "UInt64", c.respBytes).
		Add("cost", "UInt32", c.cost).
		Add("metadata", "Map(LowCardinality(String), String)", c.meta).
		Add("dimensions", "Map(LowCardinality(String), String)", c.dims).
		Add("kafka_topic", "LowCardinality(String)", c.topic).
		Add("kafka_partition", "Int32", c.partition).
		Add("kafka_offset", "Int64", c.offset)
}

// FeatureColumns accumulates feature records by column for feature_usage.
type FeatureColumns struct {
	id, tenant, user, feature, topic []string
	eventTime, ingestedAt, offset    []int64
	quantity                         []float64
	meta                             []map[string]string
	partition                        []int32
}

// Append adds one record.
func (c *FeatureColumns) Append(r *Record) {
	c.id = append(c.id, r.ID)
	c.eventTime = append(c.eventTime, r.EventTimeMs)
	c.ingestedAt = append(c.ingestedAt, r.IngestedAtMs)
	c.tenant = append(c.tenant, r.TenantID)
	c.user = append(c.user, r.UserID)
	c.feature = append(c.feature, r.Feature)
	c.quantity = append(c.quantity, r.Quantity)
	c.meta = append(c.meta, r.Metadata)
	c.topic = append(c.topic, r.Topic)
	c.partition = append(c.partition, r.Partition)
	c.offset = append(c.offset, r.Offset)
}

// Len is the number of records held.
func (c *FeatureColumns) Len() int { return len(c.id) }

// Reset empties the columns, keeping their memory.
func (c *FeatureColumns) Reset() {
	c.id, c.tenant, c.user, c.feature, c.topic = c.id[:0], c.tenant[:0], c.user[:0], c.feature[:0], c.topic[:0]
	c.eventTime, c.ingestedAt, c.offset = c.eventTime[:0], c.ingestedAt[:0], c.offset[:0]
	c.quantity = c.quantity[:0]
	clear(c.meta)
	c.meta, c.partition = c.meta[:0], c.partition[:0]
}

// Block is the columns as a block for feature_usage.
func (c *FeatureColumns) Block() *store.Block {
	return store.NewBlock().
		Add("id", "String", c.id).
		Add("event_time", "DateTime64(3, 'UTC')", c.eventTime).
		Add("ingested_at", "DateTime64(3, 'UTC')", c.ingestedAt).
		Add("tenant_id", "LowCardinality(String)", c.tenant).
		Add("user_id", "String", c.user).
		Add("feature", "LowCardinality(String)", c.feature).
		Add("quantity", "Float64", c.quantity).
		Add("metadata", "Map(LowCardinality(String), String)", c.meta).
		Add("kafka_topic", "LowCardinality(String)", c.topic).
		Add("kafka_partition", "Int32", c.partition).
		Add("kafka_offset", "Int64", c.offset)
}

// AppendJSON appends the record in the wire format of the product contract
// (the form producers send), for load generators and tests.
func (r *Record) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendQuote(dst, r.ID)
	if r.Type != "" && r.Type != TypeAPICall {
		dst = append(dst, `,"type":`...)
		dst = strconv.AppendQuote(dst, r.Type)
	}
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, r.EventTimeMs, 10)
	dst = append(dst, `,"tenantId":`...)
	dst = strconv.AppendQuote(dst, r.TenantID)
	dst = append(dst, `,"userId":`...)
	dst = strconv.AppendQuote(dst, r.UserID)
	if r.APIKeyID != "" {
		dst = append(dst, `,"apiKeyId":`...)
		dst = strconv.AppendQuote(dst, r.APIKeyID)
	}
	if r.DecisionID != "" {
		dst = append(dst, `,"decisionId":`...)
		dst = strconv.AppendQuote(dst, r.DecisionID)
	}
	if r.Type == TypeFeature {
		dst = append(dst, `,"feature":`...)
		dst = strconv.AppendQuote(dst, r.Feature)
		dst = append(dst, `,"quantity":`...)
		dst = strconv.AppendFloat(dst, r.Quantity, 'g', -1, 64)
	} else {
		dst = append(dst, `,"endpoint":`...)
		dst = strconv.AppendQuote(dst, r.Endpoint)
		dst = append(dst, `,"method":`...)
		dst = strconv.AppendQuote(dst, r.Method)
		dst = append(dst, `,"statusCode":`...)
		dst = strconv.AppendUint(dst, uint64(r.StatusCode), 10)
		dst = append(dst, `,"responseTimeMs":`...)
		dst = strconv.AppendFloat(dst, float64(r.ResponseTimeUs)/1000, 'f', -1, 64)
		dst = append(dst, `,"requestBytes":`...)
		dst = strconv.AppendUint(dst, r.RequestBytes, 10)
		dst = append(dst, `,"responseBytes":`...)
		dst = strconv.AppendUint(dst, r.ResponseBytes, 10)
		if r.Cost != 1 {
			dst = append(dst, `,"cost":`...)
			dst = strconv.AppendUint(dst, uint64(r.Cost), 10)
		}
	}
	if len(r.Metadata) > 0 {
		dst = append(dst, `,"metadata":{`...)
		first := true
		for k, v := range r.Metadata {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = strconv.AppendQuote(dst, k)
			dst = append(dst, ':')
			dst = strconv.AppendQuote(dst, v)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}
