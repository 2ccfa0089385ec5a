package ingest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// GeneratorConfig shapes generated traffic. Zero fields take the defaults
// in their comments.
type GeneratorConfig struct {
	Seed      uint64        // default 1
	Tenants   int           // default 3
	Users     int           // users per tenant, default 50
	Endpoints int           // default 20
	Start     time.Time     // default 2026-11-20T00:00:00Z
	Span      time.Duration // time the records cover, default 24h
	Count     int           // records to generate, default 10,000
	// FeatureShare is the fraction of records that are feature uses.
	// Default 0.
	FeatureShare float64
	// Topic and Partitions fill the Kafka coordinates: record i sits at
	// partition i % Partitions. Defaults "api-usage" and 4.
	Topic      string
	Partitions int
	// Bursts adds error bursts: in the first minute of every ten (of record
	// time) one endpoint fails half its calls.
	Bursts bool
}

func (c *GeneratorConfig) setDefaults() {
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Tenants <= 0 {
		c.Tenants = 3
	}
	if c.Users <= 0 {
		c.Users = 50
	}
	if c.Endpoints <= 0 {
		c.Endpoints = 20
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	}
	if c.Span <= 0 {
		c.Span = 24 * time.Hour
	}
	if c.Count <= 0 {
		c.Count = 10000
	}
	if c.Topic == "" {
		c.Topic = "api-usage"
	}
	if c.Partitions <= 0 {
		c.Partitions = 4
	}
}

type genEndpoint struct {
	path      string
	method    string
	medianMs  float64
	errorRate float64 // share of 5xx
	clientErr float64 // share of 4xx
}

var baseRoutes = []struct {
	path, method string
}{
	{"/api/users", "GET"}, {"/api/users/:id", "GET"}, {"/api/users", "POST"}, {"/api/orders", "GET"},
	{"/api/orders/:id", "GET"}, {"/api/orders", "POST"}, {"/api/orders/:id/items", "GET"}, {"/api/search", "GET"},
	{"/api/login", "POST"}, {"/api/products", "GET"}, {"/api/products/:id", "GET"}, {"/api/cart", "PUT"},
	{"/api/checkout", "POST"}, {"/api/reports/:id", "GET"}, {"/api/webhooks", "POST"}, {"/api/files/:id", "DELETE"},
	{"/graphql", "POST"}, {"/api/v2/users/:id", "PATCH"}, {"/api/invoices", "GET"}, {"/api/invoices/:id", "GET"},
}

var (
	okCodes     = []uint16{200, 200, 200, 200, 201, 204}
	clientCodes = []uint16{400, 401, 403, 404, 404, 409, 429}
	serverCodes = []uint16{500, 500, 502, 503, 504}
	regions     = []string{"eu-west", "us-east", "us-west", "ap-south"}
	features    = []string{"export", "report", "ai_tokens"}
)

// Generator produces a deterministic stream of realistic records: users
// drawn with a heavy head (a few users make most calls), per-endpoint
// latency (log-normal) and error mixes, times spread evenly over the span.
type Generator struct {
	cfg       GeneratorConfig
	rng       *rand.Rand
	users     *rand.Zipf
	endpoints []genEndpoint
	pick      *rand.Zipf // endpoint popularity
	i         int
}

// NewGenerator starts a generator.
func NewGenerator(cfg GeneratorConfig) *Generator {
	cfg.setDefaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	g := &Generator{cfg: cfg, rng: rng, users: rand.NewZipf(rng, 1.2, 2, uint64(cfg.Users-1))}
	if cfg.Endpoints > 1 {
		g.pick = rand.NewZipf(rng, 1.1, 4, uint64(cfg.Endpoints-1))
	}
	for i := 0; i < cfg.Endpoints; i++ {
		r := baseRoutes[i%len(baseRoutes)]
		path := r.path
		if i >= len(baseRoutes) {
			path = fmt.Sprintf("/api/r%d/:id", i)
		}
		g.endpoints = append(g.endpoints, genEndpoint{
			path:      path,
			method:    r.method,
			medianMs:  10 * math.Pow(1.25, float64(i%16)),
			errorRate: []float64{0.005, 0.01, 0.02, 0.08}[i%4],
			clientErr: []float64{0.03, 0.06, 0.1}[i%3],
		})
	}
	return g
}

// Config is the configuration with defaults filled in.
func (g *Generator) Config() GeneratorConfig { return g.cfg }

// Next fills r with the next record; false once Count records were made.
func (g *Generator) Next(r *Record) bool {
	if g.i >= g.cfg.Count {
		return false
	}
	i := g.i
	g.i++
	c := &g.cfg
	rng := g.rng
	slot := c.Span / time.Duration(c.Count)
	at := c.Start.Add(time.Duration(float64(c.Span) * float64(i) / float64(c.Count)))
	if slot > time.Millisecond {
		at = at.Add(time.Duration(rng.Int64N(int64(slot))))
	}
	tenant := rng.IntN(c.Tenants)
	user := int(g.users.Uint64())
	*r = Record{
		ID:           fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xffff, rng.Uint32()&0xffff, rng.Uint64()&0xffffffffffff),
		Type:         TypeAPICall,
		Cost:         1,
		EventTimeMs:  at.UnixMilli(),
		IngestedAtMs: at.UnixMilli() + 5 + rng.Int64N(200),
		TenantID:     fmt.Sprintf("tenant-%d", tenant+1),
		UserID:       fmt.Sprintf("user-%d", user+1),
		APIKeyID:     fmt.Sprintf("key_%d_%d", tenant+1, user+1),
		Topic:        c.Topic,
		Partition:    int32(i % c.Partitions),
		Offset:       int64(i / c.Partitions),
	}
	if rng.Float64() < 0.3 {
		r.Metadata = map[string]string{"region": regions[rng.IntN(len(regions))]}
	}
	if c.FeatureShare > 0 && rng.Float64() < c.FeatureShare {
		r.Type, r.Cost = TypeFeature, 0
		r.Feature = features[rng.IntN(len(features))]
		r.Quantity = float64(1 + rng.IntN(100))
		return true
	}
	ep := g.endpoints[0]
	if g.pick != nil {
		ep = g.endpoints[g.pick.Uint64()]
	}
	r.Endpoint, r.Method = ep.path, ep.method
	if c.Bursts {
		minute := r.EventTimeMs / 60_000
		if minute%10 == 0 && ep.path == g.endpoints[int(minute/10)%len(g.endpoints)].path {
			ep.errorRate = 0.5
		}
	}
	switch u := rng.Float64(); {
	case u < ep.errorRate:
		r.StatusCode = serverCodes[rng.IntN(len(serverCodes))]
	case u < ep.errorRate+ep.clientErr:
		r.StatusCode = clientCodes[rng.IntN(len(clientCodes))]
	default:
		r.StatusCode = okCodes[rng.IntN(len(okCodes))]
	}
	ms := ep.medianMs * math.Exp(0.7*rng.NormFloat64())
	if r.StatusCode >= 500 && rng.Float64() < 0.3 {
		ms *= 20 // timeouts
	}
	r.ResponseTimeUs = uint64(ms * 1000)
	r.RequestBytes = uint64(100 + rng.IntN(2000))
	r.ResponseBytes = uint64(200 + rng.IntN(20000))
	return true
}
