package plans

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"go.yaml.in/yaml/v3"
)

// Quota modes.
const (
	QuotaHard = "hard" // a request past the quota gets a 429
	QuotaSoft = "soft" // it goes through; headers and events still say so
)

// Plan is one plan's limits and prices. A zero limit is unlimited.
type Plan struct {
	Name            string          `json:"name"`
	HourlyRequests  uint64          `json:"hourlyRequests"`
	MonthlyRequests uint64          `json:"monthlyRequests"`
	QuotaMode       string          `json:"quotaMode"`
	Endpoints       []EndpointLimit `json:"endpoints,omitempty"`
	Price           Price           `json:"price"`
}

// Unlimited says the plan has neither an hourly nor a monthly limit.
func (p *Plan) Unlimited() bool { return p.HourlyRequests == 0 && p.MonthlyRequests == 0 }

// MaxEndpointLimits is the most endpoint limits one plan may set: a
// decision takes the plan's hourly limit, its quota and these together
// (limits.MaxChecks is the sum).
const MaxEndpointLimits = 6

// EndpointLimit limits one endpoint (a route template such as
// /api/users/:id) per user: Limit requests in any Window.
type EndpointLimit struct {
	Path   string        `json:"path"`
	Method string        `json:"method,omitempty"` // empty: every method
	Limit  uint64        `json:"limit"`
	Window time.Duration `json:"-"`
}

// Price is what a plan costs: MonthlyFee for the period, IncludedRequests
// free units, then PerThousand for each 1,000 units past them. A request
// is one unit unless Weights gives its endpoint another weight.
type Price struct {
	Currency         string                     `json:"currency"`
	MonthlyFee       decimal.Decimal            `json:"monthlyFee"`
	IncludedRequests uint64                     `json:"includedRequests"`
	PerThousand      decimal.Decimal            `json:"perThousand"`
	Weights          map[string]decimal.Decimal `json:"weights,omitempty"`
}

// Weight is the units one request to endpoint counts for.
func (p Price) Weight(endpoint string) decimal.Decimal {
	if w, ok := p.Weights[endpoint]; ok {
		return w
	}
	return decimal.NewFromInt(1)
}

// Plans is the set of plans, in upgrade order.
type Plans struct {
	Default string
	list    []*Plan
	slos    []Objective // nil: DefaultObjectives (slo.go)
	routes  *router     // nil: the default rule alone (routes.go)
}

// DefaultPlans are the plans of the product contract: Free 1,000 a month
// and 100 an hour, Starter 10,000 and 500, Pro 100,000 and 2,000,
// Enterprise unlimited; hard quotas; no prices.
func DefaultPlans() *Plans {
	mk := func(name string, month, hour uint64) *Plan {
		return &Plan{Name: name, MonthlyRequests: month, HourlyRequests: hour, QuotaMode: QuotaHard,
			Price: Price{Currency: "USD", IncludedRequests: month}}
	}
	return &Plans{Default: "free", list: []*Plan{
		mk("free", 1_000, 100), mk("starter", 10_000, 500), mk("pro", 100_000, 2_000), mk("enterprise", 0, 0),
	}}
}

// Get is the plan named name (case-insensitive).
func (ps *Plans) Get(name string) (*Plan, bool) {
	name = strings.ToLower(name)
	for _, p := range ps.list {
		if p.Name == name {
			return p, true
		}
	}
	return nil, false
}

// Resolve is the plan named name, or the default plan when there is none.
func (ps *Plans) Resolve(name string) *Plan {
	if p, ok := ps.Get(name); ok {
		return p
	}
	p, _ := ps.Get(ps.Default)
	return p
}

// Valid says a plan of that name exists.
func (ps *Plans) Valid(name string) bool { _, ok := ps.Get(name); return ok }

// Names are the plans' names in upgrade order.
func (ps *Plans) Names() []string {
	out := make([]string, len(ps.list))
	for i, p := range ps.list {
		out[i] = p.Name
	}
	return out
}

// Next is the plan after p in upgrade order with more room, nil when p is
// the last.
func (ps *Plans) Next(p *Plan) *Plan {
	i := slices.Index(ps.list, p)
	if i < 0 || i+1 >= len(ps.list) {
		return nil
	}
	return ps.list[i+1]
}

// The plans file. Everything is optional except plans[].name; a limit
// left out is unlimited.
type plansFile struct {
	DefaultPlan string      `yaml:"defaultPlan"`
	Currency    string      `yaml:"currency"`
	Plans       []planEntry `yaml:"plans"`
	SLOs        *[]sloEntry `yaml:"slos"`   // service-level objectives (slo.go)
	Routes      []string    `yaml:"routes"` // route templates (routes.go)
}

type planEntry struct {
	Name            string          `yaml:"name"`
	HourlyRequests  *int64          `yaml:"hourlyRequests"`
	MonthlyRequests *int64          `yaml:"monthlyRequests"`
	Quota           string          `yaml:"quota"`
	Endpoints       []endpointEntry `yaml:"endpoints"`
	Price           *priceEntry     `yaml:"price"`
}

type endpointEntry struct {
	Path   string `yaml:"path"`
	Method string `yaml:"method"`
	Limit  *int64 `yaml:"limit"`
	Window string `yaml:"window"`
}

type priceEntry struct {
	Currency         string            `yaml:"currency"`
	MonthlyFee       string            `yaml:"monthlyFee"`
	IncludedRequests *int64            `yaml:"includedRequests"`
	PerThousand      string            `yaml:"perThousand"`
	Weights          map[string]string `yaml:"weights"`
}

// LoadPlans reads a plans file (YAML, or JSON, which YAML reads too).
// Every problem is reported with its line.
func LoadPlans(path string) (*Plans, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ps, err := ParsePlans(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ps, nil
}

// ParsePlans parses a plans file's content.
func ParsePlans(b []byte) (*Plans, error) {
	var f plansFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("plans file: %w", err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(b, &root)
	v := validator{root: &root}
	ps := &Plans{Default: strings.ToLower(f.DefaultPlan)}
	if ps.Default == "" {
		ps.Default = "free"
	}
	if len(f.Plans) == 0 {
		v.errf(v.line("plans"), "plans: name at least one plan")
	}
	currency := f.Currency
	if currency == "" {
		currency = "USD"
	}
	for i, e := range f.Plans {
		p := v.plan(i, e, currency)
		if _, dup := ps.Get(p.Name); dup && p.Name != "" {
			v.errf(v.line("plans", i, "name"), "plans[%d]: a second plan named %q", i, p.Name)
		}
		ps.list = append(ps.list, p)
	}
	if f.SLOs != nil {
		ps.slos = v.objectives(*f.SLOs)
	}
	ps.routes = newRouter(v.routes(f.Routes, v.endpoints))
	if _, ok := ps.Get(ps.Default); !ok && len(f.Plans) > 0 {
		v.errf(v.line("defaultPlan"), "defaultPlan %q: no plan of that name (plans: %s)", ps.Default, strings.Join(ps.Names(), ", "))
	}
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return ps, nil
}

type validator struct {
	root *yaml.Node
	errs []error
	// endpoints are the endpoint limits' paths, routes too (routes.go).
	endpoints []*template
}

func (v *validator) errf(line int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if line > 0 {
		msg = "line " + strconv.Itoa(line) + ": " + msg
	}
	v.errs = append(v.errs, errors.New(msg))
}

// line finds the line of a value in the document by a path of mapping
// keys and sequence indexes; 0 when it is not there.
func (v *validator) line(path ...any) int {
	n := v.root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, step := range path {
		switch s := step.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == s {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		case int:
			if n.Kind != yaml.SequenceNode || s >= len(n.Content) {
				return line
			}
			n = n.Content[s]
			line = n.Line
		}
	}
	return line
}

func (v *validator) limit(x *int64, path ...any) uint64 {
	if x == nil {
		return 0
	}
	if *x <= 0 {
		v.errf(v.line(path...), "%s: %d: want a positive number (leave it out for unlimited)", pathString(path), *x)
		return 0
	}
	return uint64(*x)
}

func (v *validator) money(s string, path ...any) decimal.Decimal {
	if s == "" {
		return decimal.Zero
	}
	d, err := decimal.NewFromString(s)
	if err != nil || d.IsNegative() {
		v.errf(v.line(path...), "%s: %q: want a non-negative decimal amount such as 0.50", pathString(path), s)
		return decimal.Zero
	}
	return d
}

func (v *validator) plan(i int, e planEntry, currency string) *Plan {
	p := &Plan{Name: strings.ToLower(e.Name), QuotaMode: e.Quota}
	if p.Name == "" {
		v.errf(v.line("plans", i), "plans[%d]: name the plan", i)
	}
	p.HourlyRequests = v.limit(e.HourlyRequests, "plans", i, "hourlyRequests")
	p.MonthlyRequests = v.limit(e.MonthlyRequests, "plans", i, "monthlyRequests")
	switch p.QuotaMode {
	case "":
		p.QuotaMode = QuotaHard
	case QuotaHard, QuotaSoft:
	default:
		v.errf(v.line("plans", i, "quota"), "plans[%d].quota %q: want hard or soft", i, e.Quota)
	}
	if len(e.Endpoints) > MaxEndpointLimits {
		v.errf(v.line("plans", i, "endpoints"), "plans[%d].endpoints: at most %d endpoint limits per plan", i, MaxEndpointLimits)
	}
	for j, ep := range e.Endpoints {
		at := []any{"plans", i, "endpoints", j}
		l := EndpointLimit{Path: ep.Path, Method: strings.ToUpper(ep.Method)}
		if t, problem := parseTemplate(l.Path); problem != "" {
			v.errf(v.line(append(at, "path")...), "%s.path %q: %s", pathString(at), ep.Path, problem)
		} else {
			t.where, t.line = pathString(at)+".path", v.line(append(at, "path")...)
			v.endpoints = append(v.endpoints, t)
		}
		if l.Limit = v.limit(ep.Limit, append(at, "limit")...); ep.Limit == nil {
			v.errf(v.line(at...), "%s: set limit", pathString(at))
		}
		w, err := time.ParseDuration(ep.Window)
		switch {
		case err != nil:
			v.errf(v.line(append(at, "window")...), "%s.window %q: want a duration such as 60s, 1m or 1h", pathString(at), ep.Window)
		case w < time.Second || w > 31*24*time.Hour:
			v.errf(v.line(append(at, "window")...), "%s.window %s: want 1s to 744h", pathString(at), ep.Window)
		}
		l.Window = w
		p.Endpoints = append(p.Endpoints, l)
	}
	p.Price = Price{Currency: currency, IncludedRequests: p.MonthlyRequests}
	if e.Price != nil {
		at := []any{"plans", i, "price"}
		if e.Price.Currency != "" {
			p.Price.Currency = e.Price.Currency
		}
		p.Price.MonthlyFee = v.money(e.Price.MonthlyFee, append(at, "monthlyFee")...)
		p.Price.PerThousand = v.money(e.Price.PerThousand, append(at, "perThousand")...)
		if x := e.Price.IncludedRequests; x != nil {
			if *x < 0 {
				v.errf(v.line(append(at, "includedRequests")...), "%s.includedRequests %d: want 0 or more", pathString(at), *x)
			} else {
				p.Price.IncludedRequests = uint64(*x)
			}
		}
		for ep, ws := range e.Price.Weights {
			w := v.money(ws, append(at, "weights", ep)...)
			if !strings.HasPrefix(ep, "/") || !w.IsPositive() {
				v.errf(v.line(append(at, "weights", ep)...), "%s.weights[%q] = %q: want a route path and a positive weight", pathString(at), ep, ws)
				continue
			}
			if p.Price.Weights == nil {
				p.Price.Weights = map[string]decimal.Decimal{}
			}
			p.Price.Weights[ep] = w
		}
	}
	return p
}

func pathString(path []any) string {
	var b strings.Builder
	for _, s := range path {
		switch s := s.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		case int:
			fmt.Fprintf(&b, "[%d]", s)
		}
	}
	return b.String()
}
