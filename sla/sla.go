// Package sla judges the service-level objectives of the plans file
// (plans.Objective): monthly reports per objective and tenant — each
// indicator's attainment, error budget, burn rate and worst hours — and
// the multi-window burn-rate conditions that page or open a ticket.
//
// Everything is read from the raw usage_events rows, one hour at a time:
// the share of responses within an arbitrary latency threshold needs the
// response times themselves (the rollups keep latency only as sketches).
package sla

import (
	"math/big"
	"strconv"
	"time"

	"github.com/apimeter/apimeter/plans"
)

// Kind is a service-level indicator.
type Kind string

// The indicators.
const (
	// Availability is the share of responses that are not 5xx.
	Availability Kind = "availability"
	// Latency is the share of responses answered within a threshold.
	Latency Kind = "latency"
)

// SLI is one indicator of an objective and its target.
type SLI struct {
	Kind Kind
	// Target is the percent of good responses the objective asks for
	// (more than 0 and less than 100).
	Target float64
	// Threshold is the slowest good response (Latency only).
	Threshold time.Duration
}

// SLIs are the indicators an objective sets, availability first.
func SLIs(o plans.Objective) []SLI {
	var out []SLI
	if o.Availability > 0 {
		out = append(out, SLI{Kind: Availability, Target: o.Availability})
	}
	if o.LatencyTarget > 0 {
		out = append(out, SLI{Kind: Latency, Target: o.LatencyTarget, Threshold: o.LatencyThreshold})
	}
	return out
}

// Counts are requests and the bad ones among them.
type Counts struct {
	Total uint64
	Bad   uint64
}

// Good are the requests that met the indicator.
func (c Counts) Good() uint64 { return c.Total - c.Bad }

// Add adds o's requests to c.
func (c *Counts) Add(o Counts) {
	c.Total += o.Total
	c.Bad += o.Bad
}

// Attainment is the percent of good requests; false without requests.
func (c Counts) Attainment() (float64, bool) {
	if c.Total == 0 {
		return 0, false
	}
	r := new(big.Rat).SetFrac(u(c.Good()), u(c.Total))
	f, _ := r.Mul(r, big.NewRat(100, 1)).Float64()
	return f, true
}

// Met says the attainment is at or above target, compared exactly (999
// good of 1,000 meet 99.9 %). A month without requests meets its target.
func (c Counts) Met(target float64) bool {
	if c.Total == 0 {
		return true
	}
	// good × 100 ≥ target × total
	good := new(big.Rat).SetInt(new(big.Int).Mul(u(c.Good()), big.NewInt(100)))
	need := new(big.Rat).Mul(exact(target), new(big.Rat).SetInt(u(c.Total)))
	return good.Cmp(need) >= 0
}

// budgetShare is the share of requests the target lets fail: 1 − target/100.
func budgetShare(target float64) *big.Rat {
	r := new(big.Rat).Sub(big.NewRat(100, 1), exact(target))
	return r.Quo(r, big.NewRat(100, 1))
}

// BurnRate is how fast the requests spend the error budget: the share
// of bad requests over the share the target allows, (bad/total) /
// (1 − target/100); 1 spends it exactly over the period. False without
// requests (or for a target of 100 %, which has no budget).
func (c Counts) BurnRate(target float64) (float64, bool) {
	r, ok := c.burnRate(target)
	if !ok {
		return 0, false
	}
	f, _ := r.Float64()
	return f, true
}

func (c Counts) burnRate(target float64) (*big.Rat, bool) {
	share := budgetShare(target)
	if c.Total == 0 || share.Sign() <= 0 {
		return nil, false
	}
	r := new(big.Rat).SetFrac(u(c.Bad), u(c.Total))
	return r.Quo(r, share), true
}

// BurnsAtLeast says the burn rate is at or above factor, compared
// exactly; never without requests.
func (c Counts) BurnsAtLeast(target, factor float64) bool {
	r, ok := c.burnRate(target)
	return ok && r.Cmp(exact(factor)) >= 0
}

// Budget is an error budget: the bad requests the target allows for the
// requests seen, the bad ones so far, and the percent of the budget left
// (negative once it is overspent).
type Budget struct {
	Allowed   float64
	Consumed  uint64
	Remaining float64
}

// Budget is c's error budget under target. Without requests the whole
// budget remains (100 %).
func (c Counts) Budget(target float64) Budget {
	allowed := new(big.Rat).Mul(budgetShare(target), new(big.Rat).SetInt(u(c.Total)))
	b := Budget{Consumed: c.Bad, Remaining: 100}
	b.Allowed, _ = allowed.Float64()
	if allowed.Sign() > 0 {
		// (allowed − bad) / allowed × 100
		left := new(big.Rat).Sub(allowed, new(big.Rat).SetInt(u(c.Bad)))
		left.Quo(left, allowed).Mul(left, big.NewRat(100, 1))
		b.Remaining, _ = left.Float64()
	}
	return b
}

func u(n uint64) *big.Int { return new(big.Int).SetUint64(n) }

// exact is the decimal a person wrote for x (99.9, not the binary
// fraction nearest to it), so that targets and factors compare exactly.
func exact(x float64) *big.Rat {
	r, ok := new(big.Rat).SetString(strconv.FormatFloat(x, 'g', -1, 64))
	if !ok { // NaN or ±Inf: never a valid target or factor
		return new(big.Rat)
	}
	return r
}
